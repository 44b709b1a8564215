//! The codec on byte streams recorded from ser2net 4.3 (`telnet(rfc2217)` and `telnet`
//! accepters in front of a pty), whole and split at every byte boundary.

use super::*;

/// What ser2net 4.3 sends on connect with `accepter: telnet(rfc2217),tcp,...`: WILL SGA,
/// DO SGA, WILL ECHO, DONT ECHO, DO BINARY, WILL BINARY, DO COM-PORT-OPTION.
const RFC2217_GREETING: &[u8] = &[
    0xff, 0xfb, 0x03, 0xff, 0xfd, 0x03, 0xff, 0xfb, 0x01, 0xff, 0xfe, 0x01, 0xff, 0xfd, 0x00, 0xff,
    0xfb, 0x00, 0xff, 0xfd, 0x2c,
];
/// Its answer to our opening requests: DO SGA, then NOTIFY-MODEMSTATE 0.
const RFC2217_REPLY: &[u8] = &[0xff, 0xfd, 0x03, 0xff, 0xfa, 0x2c, 0x6b, 0x00, 0xff, 0xf0];
/// Its answers to the line settings: baud 115200, 8 data bits, parity none, 1 stop bit,
/// no flow control.
const RFC2217_SETTINGS: &[u8] = &[
    0xff, 0xfa, 0x2c, 0x65, 0x00, 0x01, 0xc2, 0x00, 0xff, 0xf0, 0xff, 0xfa, 0x2c, 0x66, 0x08, 0xff,
    0xf0, 0xff, 0xfa, 0x2c, 0x67, 0x01, 0xff, 0xf0, 0xff, 0xfa, 0x2c, 0x68, 0x01, 0xff, 0xf0, 0xff,
    0xfa, 0x2c, 0x69, 0x01, 0xff, 0xf0,
];
/// The board printed `ab\xffcd`: ser2net doubles the 0xFF.
const DATA_WITH_FF: &[u8] = &[0x61, 0x62, 0xff, 0xff, 0x63, 0x64];
/// ser2net with `accepter: telnet,tcp,...` (no rfc2217): the same greeting without DO
/// COM-PORT-OPTION ...
const TELNET_GREETING: &[u8] = &[
    0xff, 0xfb, 0x03, 0xff, 0xfd, 0x03, 0xff, 0xfb, 0x01, 0xff, 0xfe, 0x01, 0xff, 0xfd, 0x00, 0xff,
    0xfb, 0x00,
];
/// ... and DONT COM-PORT-OPTION as its answer to our WILL.
const TELNET_REFUSES_COM_PORT: &[u8] = &[0xff, 0xfe, 0x2c];

const BAUD: u32 = 115_200;

fn rfc2217_session() -> Vec<u8> {
    [
        RFC2217_GREETING,
        RFC2217_REPLY,
        RFC2217_SETTINGS,
        DATA_WITH_FF,
    ]
    .concat()
}

fn line_settings(baud: u32) -> Vec<u8> {
    let mut v = vec![IAC, SB, OPT_COM_PORT, SET_BAUDRATE];
    v.extend_from_slice(&escape(&baud.to_be_bytes()));
    v.extend_from_slice(&[IAC, SE]);
    for (cmd, val) in [
        (SET_DATASIZE, 8),
        (SET_PARITY, 1),
        (SET_STOPSIZE, 1),
        (SET_CONTROL, 1),
    ] {
        v.extend_from_slice(&[IAC, SB, OPT_COM_PORT, cmd, val, IAC, SE]);
    }
    v
}

/// Feeds `chunks` one by one; returns the data and everything the codec sent after its
/// opening requests.
fn run(t: &mut Telnet, chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let mut data = Vec::new();
    let mut sent = Vec::new();
    for c in chunks {
        data.extend(t.decode(c));
        sent.extend(t.take_output());
    }
    (data, sent)
}

#[test]
fn opening_requests_ask_for_binary_sga_and_com_port() {
    let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
    assert_eq!(
        t.take_output(),
        [IAC, WILL, 0, IAC, DO, 0, IAC, WILL, 3, IAC, DO, 3, IAC, WILL, 44]
    );
    let mut t = Telnet::new(Mode::Telnet);
    assert_eq!(
        t.take_output(),
        [IAC, WILL, 0, IAC, DO, 0, IAC, WILL, 3, IAC, DO, 3]
    );
}

#[test]
fn ser2net_rfc2217_session_sets_the_line_and_passes_0xff_once() {
    let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
    t.take_output();
    let (data, sent) = run(&mut t, &[RFC2217_GREETING]);
    assert!(data.is_empty());
    // ECHO refused; everything else was what we asked for; then the line settings.
    let mut want = vec![IAC, DONT, OPT_ECHO];
    want.extend(line_settings(BAUD));
    assert_eq!(sent, want);
    assert_eq!(t.com_port(), Some(true));
    assert!(t.binary());
    assert!(!t.line_set(), "settings sent, not yet answered");
    let (data, sent) = run(&mut t, &[RFC2217_REPLY, RFC2217_SETTINGS]);
    assert!(t.line_set());
    assert!(data.is_empty(), "{data:?}");
    assert!(sent.is_empty(), "nothing to answer: {sent:?}");
    assert_eq!(t.server_baud(), Some(BAUD));
    let (data, sent) = run(&mut t, &[DATA_WITH_FF]);
    assert_eq!(data, b"ab\xffcd");
    assert!(sent.is_empty());
    assert_eq!(t.refused(), None);
}

#[test]
fn every_split_of_the_session_decodes_the_same() {
    let whole = rfc2217_session();
    let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
    let want = run(&mut t, &[&whole]);
    assert_eq!(want.0, b"ab\xffcd");
    for i in 0..=whole.len() {
        let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
        let (a, b) = whole.split_at(i);
        assert_eq!(run(&mut t, &[a, b]), want, "split at {i}");
        assert_eq!(t.server_baud(), Some(BAUD), "split at {i}");
    }
    // And one byte per read: every IAC is at the end of one read, its command in the next.
    let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
    let bytes: Vec<&[u8]> = whole.chunks(1).collect();
    assert_eq!(run(&mut t, &bytes), want);
}

#[test]
fn refused_com_port_option_is_reported() {
    let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
    t.take_output();
    run(&mut t, &[TELNET_GREETING]);
    assert_eq!(t.com_port(), None, "no answer yet");
    let (_, sent) = run(&mut t, &[TELNET_REFUSES_COM_PORT]);
    assert!(sent.is_empty(), "already off, nothing to say: {sent:?}");
    assert_eq!(t.refused(), Some(OPT_COM_PORT));
    assert_eq!(t.com_port(), Some(false));
    // Plain telnet never asks for it, so the same stream is fine there.
    let mut t = Telnet::new(Mode::Telnet);
    run(&mut t, &[TELNET_GREETING, TELNET_REFUSES_COM_PORT]);
    assert_eq!(t.refused(), None);
    assert_eq!(t.com_port(), Some(true));
}

#[test]
fn plain_telnet_declines_com_port_and_unknown_options() {
    let mut t = Telnet::new(Mode::Telnet);
    t.take_output();
    let (data, sent) = run(&mut t, &[RFC2217_GREETING, &[IAC, DO, 24, IAC, WILL, 31]]);
    assert!(data.is_empty());
    assert_eq!(
        sent,
        [IAC, DONT, OPT_ECHO, IAC, WONT, 44, IAC, WONT, 24, IAC, DONT, 31]
    );
    // Asked again while off: the same polite answer, never a loop of them.
    let (_, sent) = run(&mut t, &[&[IAC, DONT, 44, IAC, WONT, 31]]);
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn server_turning_an_option_off_is_acknowledged_once() {
    let mut t = Telnet::new(Mode::Telnet);
    run(&mut t, &[TELNET_GREETING]);
    assert!(t.binary());
    let (_, sent) = run(&mut t, &[&[IAC, WONT, 0, IAC, DONT, 0]]);
    assert_eq!(sent, [IAC, DONT, 0, IAC, WONT, 0]);
    assert!(!t.binary());
    let (_, sent) = run(&mut t, &[&[IAC, WONT, 0, IAC, DONT, 0]]);
    assert!(sent.is_empty());
}

#[test]
fn commands_and_subnegotiations_never_reach_the_data() {
    let mut t = Telnet::new(Mode::Telnet);
    let stream = [
        b'x', IAC, 241, b'y', IAC, SB, 24, 0, IAC, IAC, b'q', IAC, SE, b'z', IAC, IAC, IAC, IAC,
    ];
    assert_eq!(t.decode(&stream), [b'x', b'y', b'z', 0xff, 0xff]);
}

#[test]
fn baud_with_0xff_is_escaped_in_the_settings_and_read_back() {
    let baud = 0x0001_c2ff;
    let mut t = Telnet::new(Mode::Rfc2217 { line: baud.into() });
    t.take_output();
    let (_, sent) = run(&mut t, &[RFC2217_GREETING]);
    let sb = [
        IAC,
        SB,
        OPT_COM_PORT,
        SET_BAUDRATE,
        0,
        1,
        0xc2,
        IAC,
        IAC,
        IAC,
        SE,
    ];
    assert!(sent.windows(sb.len()).any(|w| w == sb), "{sent:?}");
    run(
        &mut t,
        &[&[IAC, SB, 44, 101, 0, 1, 0xc2, IAC], &[IAC, IAC, SE]],
    );
    assert_eq!(t.server_baud(), Some(baud));
}

#[test]
fn escape_doubles_every_0xff() {
    assert_eq!(escape(b"a\xff\xffb"), b"a\xff\xff\xff\xffb");
    assert_eq!(escape(b""), b"");
}

#[test]
fn break_is_set_control_on_rfc2217_and_brk_on_telnet() {
    let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
    run(&mut t, &[RFC2217_GREETING]);
    let (on, off) = t.break_sequence();
    assert_eq!(on, [IAC, SB, 44, SET_CONTROL, 5, IAC, SE]);
    assert_eq!(off, [IAC, SB, 44, SET_CONTROL, 6, IAC, SE]);
    let t = Telnet::new(Mode::Telnet);
    assert_eq!(t.break_sequence(), (vec![IAC, BRK], vec![]));
}

#[test]
fn line_settings_follow_the_board_file_and_a_different_answer_is_named() {
    use crate::config::serial_line::{Flow, SerialLine};
    let line = SerialLine::parse(9600, "7E2", Flow::RtsCts).unwrap();
    let mut t = Telnet::new(Mode::Rfc2217 { line });
    t.take_output();
    let (_, sent) = run(&mut t, &[RFC2217_GREETING]);
    let mut want = vec![IAC, DONT, OPT_ECHO];
    want.extend_from_slice(&[
        IAC,
        SB,
        OPT_COM_PORT,
        SET_BAUDRATE,
        0,
        0,
        0x25,
        0x80,
        IAC,
        SE,
    ]);
    for (cmd, val) in [
        (SET_DATASIZE, 7),
        (SET_PARITY, 3),
        (SET_STOPSIZE, 2),
        (SET_CONTROL, 3),
    ] {
        want.extend_from_slice(&[IAC, SB, OPT_COM_PORT, cmd, val, IAC, SE]);
    }
    assert_eq!(sent, want);
    // The server applied all but the flow control (its adapter has no RTS/CTS: 1, none).
    let answer =
        |cmd: u8, v: &[u8]| [&[IAC, SB, OPT_COM_PORT, cmd + 100][..], v, &[IAC, SE]].concat();
    let settings = [
        answer(SET_BAUDRATE, &9600u32.to_be_bytes()),
        answer(SET_DATASIZE, &[7]),
        answer(SET_PARITY, &[3]),
        answer(SET_STOPSIZE, &[2]),
        answer(SET_CONTROL, &[1]),
    ]
    .concat();
    run(&mut t, &[RFC2217_REPLY, &settings]);
    assert!(t.line_set());
    assert_eq!(t.line_mismatch(), Some(("flow control", 3, 1)));

    // ser2net's own answers to 115200 8N1 match what was asked.
    let mut t = Telnet::new(Mode::Rfc2217 { line: BAUD.into() });
    run(&mut t, &[&rfc2217_session()]);
    assert!(t.line_set());
    assert_eq!(t.line_mismatch(), None);
}
