//! The telnet side of a network console (`telnet://`, `rfc2217://`): a pure state machine
//! over bytes. Bytes from the server go in; board output and the replies to send come out.
//!
//! Written here rather than taken from a crate: hil needs a small, fixed subset (BINARY
//! and SGA both ways, COM-PORT-OPTION as a client, break, IAC escaping), decoding in place
//! inside the broker's read buffer, and an exact error when a server refuses RFC 2217.
//! The telnet crates on crates.io are either unmaintained or full NVT terminals whose
//! option handling would still need wrapping for this; a few hundred lines tested on
//! ser2net's own byte streams are easier to keep right.
//!
//! Option negotiation follows RFC 1143's "Q method" (without its queue bits), so neither
//! side can loop: a request is only answered when it changes an option's state.

use crate::config::serial_line::SerialLine;

pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const BRK: u8 = 243;
pub const SE: u8 = 240;

pub const OPT_BINARY: u8 = 0;
pub const OPT_ECHO: u8 = 1;
pub const OPT_SGA: u8 = 3;
pub const OPT_COM_PORT: u8 = 44;

/// RFC 2217 client commands (the server answers each with the same code plus 100).
pub const SET_BAUDRATE: u8 = 1;
pub const SET_DATASIZE: u8 = 2;
pub const SET_PARITY: u8 = 3;
pub const SET_STOPSIZE: u8 = 4;
pub const SET_CONTROL: u8 = 5;
const CONTROL_BREAK_ON: u8 = 5;
const CONTROL_BREAK_OFF: u8 = 6;
const SERVER_OFFSET: u8 = 100;

/// Longest subnegotiation kept; a server's are a few bytes (RFC 2217 signatures are the
/// longest). Longer ones are read to their end and dropped.
const SB_LIMIT: usize = 256;

/// One side's view of one option (RFC 1143).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Q {
    #[default]
    No,
    Yes,
    /// We asked for it and wait for the answer. (hil never asks to turn an option off,
    /// so RFC 1143's WANTNO state does not arise.)
    WantYes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    Data,
    Iac,
    /// After IAC WILL/WONT/DO/DONT: the option byte comes next.
    Verb(u8),
    /// Inside IAC SB ... (the option is the first byte kept).
    Sub,
    SubIac,
}

/// What the codec is set up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain telnet: BINARY and SGA.
    Telnet,
    /// Telnet with RFC 2217 COM-PORT-OPTION: the serial line is set to `line`.
    Rfc2217 { line: SerialLine },
}

#[derive(Debug)]
pub struct Telnet {
    mode: Mode,
    parse: Parse,
    /// Options we perform (`WILL`), by option byte.
    us: [Q; 256],
    /// Options the server performs (its `WILL`).
    him: [Q; 256],
    sub: Vec<u8>,
    sub_overflow: bool,
    /// Replies and requests not yet sent.
    out: Vec<u8>,
    /// The server said DONT/WONT COM-PORT-OPTION.
    refused: Option<u8>,
    /// The line settings were sent (once the server agreed to COM-PORT-OPTION).
    com_port_set: bool,
    /// What the server reported back for each line setting, by command (SET-BAUDRATE
    /// to SET-CONTROL: indexes 1 to 5).
    server_line: [Option<u32>; 6],
    /// The server answered SET-CONTROL, the last line setting: the line is set.
    line_set: bool,
}

impl Telnet {
    /// A codec with its opening requests queued (see [`Telnet::take_output`]).
    pub fn new(mode: Mode) -> Telnet {
        let mut t = Telnet {
            mode,
            parse: Parse::Data,
            us: [Q::No; 256],
            him: [Q::No; 256],
            sub: Vec::new(),
            sub_overflow: false,
            out: Vec::new(),
            refused: None,
            com_port_set: false,
            server_line: [None; 6],
            line_set: false,
        };
        for opt in [OPT_BINARY, OPT_SGA] {
            t.ask_us(opt);
            t.ask_him(opt);
        }
        if t.is_rfc2217() {
            t.ask_us(OPT_COM_PORT);
        }
        t
    }

    fn is_rfc2217(&self) -> bool {
        matches!(self.mode, Mode::Rfc2217 { .. })
    }

    /// Options we agree to perform.
    fn we_support(&self, opt: u8) -> bool {
        opt == OPT_BINARY || opt == OPT_SGA || (opt == OPT_COM_PORT && self.is_rfc2217())
    }

    /// Options we agree to let the server perform. Not ECHO: the board echoes itself.
    fn he_may(opt: u8) -> bool {
        opt == OPT_BINARY || opt == OPT_SGA
    }

    fn cmd(&mut self, verb: u8, opt: u8) {
        self.out.extend_from_slice(&[IAC, verb, opt]);
    }

    fn ask_us(&mut self, opt: u8) {
        if self.us[opt as usize] == Q::No {
            self.us[opt as usize] = Q::WantYes;
            self.cmd(WILL, opt);
        }
    }

    fn ask_him(&mut self, opt: u8) {
        if self.him[opt as usize] == Q::No {
            self.him[opt as usize] = Q::WantYes;
            self.cmd(DO, opt);
        }
    }

    /// Bytes to send to the server now (opening requests, replies, line settings).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// `Some(option)` once the server refused an option hil cannot work without.
    pub fn refused(&self) -> Option<u8> {
        self.refused
    }

    /// For `rfc2217`: whether the server has agreed to COM-PORT-OPTION (`Some(true)`),
    /// refused it (`Some(false)`) or not answered yet (`None`). Plain telnet: `Some(true)`.
    pub fn com_port(&self) -> Option<bool> {
        if !self.is_rfc2217() {
            return Some(true);
        }
        match self.us[OPT_COM_PORT as usize] {
            Q::Yes => Some(true),
            _ if self.refused.is_some() => Some(false),
            _ => None,
        }
    }

    /// For `rfc2217`: whether the server has answered every line setting (it applies them
    /// in order, so the answer to the last one means the line is set up). Output the
    /// board printed before may have been flushed by that. Plain telnet: `true`.
    pub fn line_set(&self) -> bool {
        !self.is_rfc2217() || self.line_set
    }

    /// The baud rate the server confirmed, once it did.
    pub fn server_baud(&self) -> Option<u32> {
        self.server_line[SET_BAUDRATE as usize]
    }

    /// Whether BINARY is on in both directions.
    pub fn binary(&self) -> bool {
        self.us[OPT_BINARY as usize] == Q::Yes && self.him[OPT_BINARY as usize] == Q::Yes
    }

    /// Decodes `buf` in place: telnet commands are taken out and handled, `IAC IAC`
    /// becomes one 0xFF. Returns how many data bytes are now at the start of `buf`. A
    /// command split across reads is completed by the next call.
    pub fn decode_in_place(&mut self, buf: &mut [u8]) -> usize {
        let mut w = 0;
        for r in 0..buf.len() {
            let b = buf[r];
            match self.parse {
                Parse::Data => {
                    if b == IAC {
                        self.parse = Parse::Iac;
                    } else {
                        buf[w] = b;
                        w += 1;
                    }
                }
                Parse::Iac => {
                    self.parse = Parse::Data;
                    match b {
                        IAC => {
                            buf[w] = IAC;
                            w += 1;
                        }
                        WILL | WONT | DO | DONT => self.parse = Parse::Verb(b),
                        SB => {
                            self.sub.clear();
                            self.sub_overflow = false;
                            self.parse = Parse::Sub;
                        }
                        // NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, a stray SE: nothing for
                        // a console log.
                        _ => {}
                    }
                }
                Parse::Verb(v) => {
                    self.parse = Parse::Data;
                    self.negotiate(v, b);
                }
                Parse::Sub => {
                    if b == IAC {
                        self.parse = Parse::SubIac;
                    } else {
                        self.sub_byte(b);
                    }
                }
                Parse::SubIac => match b {
                    SE => {
                        self.parse = Parse::Data;
                        if !self.sub_overflow {
                            let sub = std::mem::take(&mut self.sub);
                            self.subnegotiation(&sub);
                            self.sub = sub;
                        }
                    }
                    IAC => {
                        self.sub_byte(IAC);
                        self.parse = Parse::Sub;
                    }
                    // A server that forgot IAC SE: the subnegotiation ends here and
                    // the byte is a command (RFC 855 leaves this open; be lenient).
                    _ => {
                        self.parse = Parse::Iac;
                        let mut one = [b];
                        let n = self.decode_in_place(&mut one);
                        if n == 1 {
                            buf[w] = one[0];
                            w += 1;
                        }
                    }
                },
            }
        }
        w
    }

    /// [`Telnet::decode_in_place`] on a copy: the data bytes of `input`.
    pub fn decode(&mut self, input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        let n = self.decode_in_place(&mut v);
        v.truncate(n);
        v
    }

    fn sub_byte(&mut self, b: u8) {
        if self.sub.len() < SB_LIMIT {
            self.sub.push(b);
        } else {
            self.sub_overflow = true;
        }
    }

    fn negotiate(&mut self, verb: u8, opt: u8) {
        let i = opt as usize;
        match verb {
            DO => match self.us[i] {
                Q::No if self.we_support(opt) => {
                    self.us[i] = Q::Yes;
                    self.cmd(WILL, opt);
                    self.enabled_us(opt);
                }
                Q::No => self.cmd(WONT, opt),
                Q::WantYes => {
                    self.us[i] = Q::Yes;
                    self.enabled_us(opt);
                }
                Q::Yes => {}
            },
            DONT => {
                match self.us[i] {
                    Q::Yes => {
                        self.us[i] = Q::No;
                        self.cmd(WONT, opt);
                    }
                    Q::WantYes => self.us[i] = Q::No,
                    Q::No => {}
                }
                if opt == OPT_COM_PORT && self.is_rfc2217() {
                    self.refused = Some(opt);
                }
            }
            WILL => match self.him[i] {
                Q::No if Self::he_may(opt) => {
                    self.him[i] = Q::Yes;
                    self.cmd(DO, opt);
                }
                Q::No => self.cmd(DONT, opt),
                Q::WantYes => self.him[i] = Q::Yes,
                Q::Yes => {}
            },
            WONT => match self.him[i] {
                Q::Yes => {
                    self.him[i] = Q::No;
                    self.cmd(DONT, opt);
                }
                Q::WantYes => self.him[i] = Q::No,
                Q::No => {}
            },
            _ => unreachable!("negotiate is only called for WILL/WONT/DO/DONT"),
        }
    }

    /// An option we perform has just been turned on.
    fn enabled_us(&mut self, opt: u8) {
        if opt == OPT_COM_PORT {
            if let Mode::Rfc2217 { line } = self.mode {
                if !self.com_port_set {
                    self.com_port_set = true;
                    self.set_line(line);
                }
            }
        }
    }

    /// SET-BAUDRATE, SET-DATASIZE, SET-PARITY, SET-STOPSIZE, then SET-CONTROL with the
    /// flow control (the last: its answer means the line is set).
    fn set_line(&mut self, line: SerialLine) {
        for (cmd, value) in Self::requested(line) {
            match cmd {
                SET_BAUDRATE => self.com_port_cmd(cmd, &value.to_be_bytes()),
                _ => self.com_port_cmd(cmd, &[value as u8]),
            }
        }
    }

    /// Each line setting as (command, value).
    fn requested(line: SerialLine) -> [(u8, u32); 5] {
        [
            (SET_BAUDRATE, line.baud),
            (SET_DATASIZE, line.data_bits.into()),
            (SET_PARITY, line.rfc2217_parity().into()),
            (SET_STOPSIZE, line.stop_bits.into()),
            (SET_CONTROL, line.rfc2217_flow().into()),
        ]
    }

    /// A setting the server reported back other than asked (an adapter that cannot do
    /// RTS/CTS, a ser2net that clamps the baud rate): `(name, asked, got)`.
    pub fn line_mismatch(&self) -> Option<(&'static str, u32, u32)> {
        let Mode::Rfc2217 { line } = self.mode else {
            return None;
        };
        let names = [
            "",
            "baud rate",
            "data bits",
            "parity",
            "stop bits",
            "flow control",
        ];
        Self::requested(line).into_iter().find_map(|(cmd, asked)| {
            let got = self.server_line[cmd as usize]?;
            (got != asked).then_some((names[cmd as usize], asked, got))
        })
    }

    /// Queues `IAC SB COM-PORT-OPTION cmd value IAC SE`, 0xFF in `value` doubled.
    fn com_port_cmd(&mut self, cmd: u8, value: &[u8]) {
        self.out.extend_from_slice(&[IAC, SB, OPT_COM_PORT, cmd]);
        escape_into(value, &mut self.out);
        self.out.extend_from_slice(&[IAC, SE]);
    }

    fn subnegotiation(&mut self, sub: &[u8]) {
        // COM-PORT-OPTION answers: the server echoes each setting as it applied it;
        // NOTIFY-LINESTATE / NOTIFY-MODEMSTATE are line events a console log needs not.
        if let [OPT_COM_PORT, c, v @ ..] = sub {
            match (c.checked_sub(SERVER_OFFSET), v) {
                (Some(SET_BAUDRATE), [a, b, c, d]) => {
                    self.server_line[SET_BAUDRATE as usize] =
                        Some(u32::from_be_bytes([*a, *b, *c, *d]));
                }
                (Some(cmd @ SET_DATASIZE..=SET_STOPSIZE), [v]) => {
                    self.server_line[cmd as usize] = Some((*v).into());
                }
                // SET-CONTROL answers break and DTR/RTS changes too; only the first
                // answer after the line was set is the flow control's.
                (Some(SET_CONTROL), [v]) if self.com_port_set && !self.line_set => {
                    self.server_line[SET_CONTROL as usize] = Some((*v).into());
                }
                _ => {}
            }
            if *c == SET_CONTROL + SERVER_OFFSET && self.com_port_set {
                self.line_set = true;
            }
        }
    }

    /// Bytes that send a break: RFC 2217 SET-CONTROL break on, then off, or telnet's
    /// `IAC BRK`. Returns `(on, off)`; `off` is empty for plain telnet. The caller waits
    /// between them (the length of the break).
    pub fn break_sequence(&self) -> (Vec<u8>, Vec<u8>) {
        match self.mode {
            Mode::Rfc2217 { .. } if self.us[OPT_COM_PORT as usize] == Q::Yes => {
                let sb = |v| vec![IAC, SB, OPT_COM_PORT, SET_CONTROL, v, IAC, SE];
                (sb(CONTROL_BREAK_ON), sb(CONTROL_BREAK_OFF))
            }
            _ => (vec![IAC, BRK], Vec::new()),
        }
    }
}

/// `data` as telnet sends it: each 0xFF doubled.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 8);
    escape_into(data, &mut v);
    v
}

fn escape_into(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
}

#[cfg(test)]
mod tests;
