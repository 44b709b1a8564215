//! The console's serial line settings: `console.baud`, `console.format` (`"8N1"`: data
//! bits, parity, stop bits) and `console.flow` (`"none"`, `"rts-cts"`, `"xon-xoff"`).
//!
//! hil sets them where it owns the line: on a local tty (termios, through `serialport`) and
//! over RFC 2217 (SET-DATASIZE, SET-PARITY, SET-STOPSIZE and SET-CONTROL, so ser2net sets
//! the exporter's adapter). Plain telnet, raw TCP and a console server's attach command
//! keep their own settings.

use serde::Deserialize;

/// Parity as RFC 2217 numbers it (SET-PARITY values), for the ones a UART console uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

/// Flow control (RFC 2217 SET-CONTROL values 1, 2 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    #[default]
    None,
    XonXoff,
    RtsCts,
}

/// Everything a serial line is set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialLine {
    pub baud: u32,
    /// 5 to 8.
    pub data_bits: u8,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    pub flow: Flow,
}

/// A bare baud rate is the usual console line: 8N1, no flow control.
impl From<u32> for SerialLine {
    fn from(baud: u32) -> SerialLine {
        SerialLine {
            baud,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow: Flow::None,
        }
    }
}

impl SerialLine {
    /// `baud` with a `format` such as `8N1` or `7E2`; the error says what to write.
    pub fn parse(baud: u32, format: &str, flow: Flow) -> Result<SerialLine, String> {
        let expected = "expected DATA BITS (5-8), PARITY (N, E or O) and STOP BITS (1 or 2), e.g. \"8N1\" or \"7E1\"";
        let b = format.as_bytes();
        if b.len() != 3 {
            return Err(format!("is \"{format}\"; {expected}"));
        }
        let data_bits = match b[0] {
            c @ b'5'..=b'8' => c - b'0',
            _ => return Err(format!("is \"{format}\"; {expected}")),
        };
        let parity = match b[1].to_ascii_uppercase() {
            b'N' => Parity::None,
            b'E' => Parity::Even,
            b'O' => Parity::Odd,
            _ => return Err(format!("is \"{format}\"; {expected}")),
        };
        let stop_bits = match b[2] {
            b'1' => 1,
            b'2' => 2,
            _ => return Err(format!("is \"{format}\"; {expected}")),
        };
        Ok(SerialLine {
            baud,
            data_bits,
            parity,
            stop_bits,
            flow,
        })
    }

    /// RFC 2217 SET-PARITY value.
    pub fn rfc2217_parity(&self) -> u8 {
        match self.parity {
            Parity::None => 1,
            Parity::Odd => 2,
            Parity::Even => 3,
        }
    }

    /// RFC 2217 SET-CONTROL value for the flow control.
    pub fn rfc2217_flow(&self) -> u8 {
        match self.flow {
            Flow::None => 1,
            Flow::XonXoff => 2,
            Flow::RtsCts => 3,
        }
    }
}

impl std::fmt::Display for SerialLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Odd => 'O',
            Parity::Even => 'E',
        };
        let flow = match self.flow {
            Flow::None => "no flow control",
            Flow::XonXoff => "XON/XOFF",
            Flow::RtsCts => "RTS/CTS",
        };
        write!(
            f,
            "{} {}{parity}{}, {flow}",
            self.baud, self.data_bits, self.stop_bits
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print_and_bad_ones_say_what_to_write() {
        let l = SerialLine::parse(115_200, "7e2", Flow::RtsCts).unwrap();
        assert_eq!((l.data_bits, l.parity, l.stop_bits), (7, Parity::Even, 2));
        assert_eq!((l.rfc2217_parity(), l.rfc2217_flow()), (3, 3));
        assert_eq!(l.to_string(), "115200 7E2, RTS/CTS");
        assert_eq!(
            SerialLine::from(1_500_000).to_string(),
            "1500000 8N1, no flow control"
        );
        for bad in ["8N", "9N1", "8X1", "8N3", "8N1 ", ""] {
            let e = SerialLine::parse(9600, bad, Flow::None).unwrap_err();
            assert!(e.contains("e.g. \"8N1\""), "{bad}: {e}");
        }
    }
}
