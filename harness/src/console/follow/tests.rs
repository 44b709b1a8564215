//! The fan-out and the publisher: a follower that never reads costs the broker nothing,
//! is told what it missed, and the console log is the same with followers as without.

use super::proto::{Decoder, Frame, Header};
use super::*;
use crate::console::Console;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdStream;
use std::time::Instant;

fn header(input: bool) -> Header {
    Header {
        run: "r1".into(),
        holder: "job manual (ann@lab1, pid 1, run r1)".into(),
        input,
    }
}

/// Reads the header line and then frames from `s` until `until` says stop (or 20 s).
fn read_frames(s: &mut StdStream, mut until: impl FnMut(&Frame) -> bool) -> (Header, Vec<Frame>) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut raw = Vec::new();
    let mut b = [0u8; 65536];
    let nl = loop {
        if let Some(i) = raw.iter().position(|c| *c == b'\n') {
            break i;
        }
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed before the header");
        raw.extend_from_slice(&b[..n]);
    };
    let h = Header::parse(std::str::from_utf8(&raw[..=nl]).unwrap()).unwrap();
    let mut d = Decoder::default();
    d.push(&raw[nl + 1..]);
    let mut frames = Vec::new();
    loop {
        while let Some(f) = d.next_frame().unwrap() {
            let stop = until(&f);
            frames.push(f);
            if stop {
                return (h, frames);
            }
        }
        let n = s.read(&mut b).unwrap();
        if n == 0 {
            return (h, frames);
        }
        d.push(&b[..n]);
    }
}

fn data_of(frames: &[Frame]) -> Vec<u8> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Data { bytes, .. } => Some(bytes.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

#[test]
fn a_follower_that_never_reads_skips_and_is_told_how_much() {
    let f = Fanout::new(header(false));
    let (mut rx, queued) = f.add().unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    let t = Instant::now();
    // 64 MiB at a follower that takes nothing: the queue stops at its limit.
    for i in 0..4096u64 {
        f.data(Duration::from_micros(i), &chunk);
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(queued.load(Ordering::Relaxed) <= QUEUE_LIMIT + 64);
    // It catches up: what was queued, then how much it missed, then new output.
    let mut got = Vec::new();
    while let Ok(fr) = rx.try_recv() {
        queued.fetch_sub(fr.len(), Ordering::Relaxed);
        got.extend_from_slice(&fr);
    }
    f.data(Duration::from_secs(9), b"after\n");
    while let Ok(fr) = rx.try_recv() {
        got.extend_from_slice(&fr);
    }
    let nl = got.iter().position(|c| *c == b'\n').unwrap();
    let mut d = Decoder::default();
    d.push(&got[nl + 1..]);
    let mut frames = Vec::new();
    while let Some(fr) = d.next_frame().unwrap() {
        frames.push(fr);
    }
    let delivered: usize = data_of(&frames).len();
    let skipped: u64 = frames
        .iter()
        .filter_map(|fr| match fr {
            Frame::Skipped(n) => Some(*n),
            _ => None,
        })
        .sum();
    // The new follower's backlog (an empty one here), every byte delivered or counted.
    assert_eq!(
        delivered as u64 + skipped,
        4096 * 16 * 1024 + 6,
        "{skipped}"
    );
    assert!(skipped > 60 * 1024 * 1024, "{skipped}");
    assert!(
        matches!(frames.last(), Some(Frame::Data { bytes, .. }) if bytes == b"after\n"),
        "{:?}",
        frames.last()
    );
    assert!(matches!(frames[frames.len() - 2], Frame::Skipped(_)));
}

#[test]
fn a_new_follower_gets_the_header_then_the_last_few_kib_then_live_output() {
    let f = Fanout::new(header(true));
    for i in 0..100u32 {
        f.data(
            Duration::from_millis(u64::from(i)),
            format!("line {i:03} {}\n", "-".repeat(90)).as_bytes(),
        );
    }
    let (mut rx, _) = f.add().unwrap();
    f.data(Duration::from_secs(7), b"live\n");
    f.end("run r1 ended");
    let mut got = Vec::new();
    while let Ok(fr) = rx.try_recv() {
        got.extend_from_slice(&fr);
    }
    let nl = got.iter().position(|c| *c == b'\n').unwrap();
    assert_eq!(
        Header::parse(std::str::from_utf8(&got[..=nl]).unwrap()).unwrap(),
        header(true)
    );
    let mut d = Decoder::default();
    d.push(&got[nl + 1..]);
    let mut frames = Vec::new();
    while let Some(fr) = d.next_frame().unwrap() {
        frames.push(fr);
    }
    let text = String::from_utf8(data_of(&frames)).unwrap();
    assert!(
        text.len() <= BACKLOG + 5 && text.len() > BACKLOG - 200,
        "{}",
        text.len()
    );
    assert!(text.starts_with("line "), "whole chunks: {text:.20}");
    assert!(text.contains("line 099") && !text.contains("line 000"));
    assert!(text.ends_with("live\n"));
    // Each chunk keeps the stamp it arrived with.
    assert!(matches!(&frames[0], Frame::Data { t, .. } if *t > Duration::from_millis(50)));
    assert_eq!(frames.last(), Some(&Frame::End("run r1 ended".into())));
    // After the end nobody else is taken on.
    assert!(f.add().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_follower_never_stalls_the_broker_and_the_log_is_the_same_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| {
            if i % 97 == 96 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    let mut logs = Vec::new();
    for follow in [false, true] {
        let (board, hil_side) = StdStream::pair().unwrap();
        let log = dir.path().join(format!("console-{follow}.log"));
        let console = Console::from_stream(hil_side, &log, "t").unwrap();
        let mut rx = console.subscribe();
        let mut publisher = None;
        let mut stuck = None;
        if follow {
            let p = Publisher::start(dir.path(), "b1", header(false)).unwrap();
            console.publish_to(p.fanout());
            // Connected, header read, then never another byte taken.
            let mut s = StdStream::connect(p.path()).unwrap();
            let mut first = [0u8; 1];
            s.read_exact(&mut first).unwrap();
            stuck = Some(s);
            publisher = Some(p);
        }
        let data = payload.clone();
        let writer = std::thread::spawn(move || {
            let mut board = board;
            board.write_all(&data).unwrap();
            board
        });
        let t = Instant::now();
        let mut seen = 0usize;
        while seen < payload.len() {
            match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(crate::console::Event::Data(d))) => seen += d.len(),
                Ok(other) => panic!("{other:?}"),
                Err(_) => panic!("the broker stalled after {seen} bytes (follower: {follow})"),
            }
        }
        let took = t.elapsed();
        assert!(took < Duration::from_secs(20), "{took:?}");
        drop(writer.join().unwrap());
        if let Some(p) = publisher {
            p.finish("run r1 ended").await;
        }
        drop(stuck);
        drop(console);
        // The broker logs its close once every handle is gone.
        let end = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log)
            .unwrap()
            .contains("### hil: console")
        {
            assert!(Instant::now() < end, "log closed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        logs.push(std::fs::read(&log).unwrap());
    }
    // Stamps differ from one run to the next, and so may the close (the board's end of
    // stream or the handle's drop, whichever comes first); the board's bytes may not.
    let strip = |l: &[u8]| -> Vec<u8> {
        let s = String::from_utf8_lossy(l);
        s.lines()
            .skip(1)
            .filter(|line| !line.contains("] ### hil: console "))
            .map(|line| {
                line.split_once("] ")
                    .map_or(line, |(_, rest)| rest)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    };
    assert_eq!(strip(&logs[0]).len(), strip(&logs[1]).len());
    assert!(
        strip(&logs[0]) == strip(&logs[1]),
        "logs differ with a follower"
    );
}

#[tokio::test]
async fn followers_see_live_output_and_the_end_and_the_socket_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let p = Publisher::start(dir.path(), "b1", header(false)).unwrap();
    let path = p.path().to_path_buf();
    assert_eq!(
        path,
        dir.path().join(format!("b1.{}.follow", std::process::id()))
    );
    let mode = std::fs::symlink_metadata(&path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666, "{mode:o}");
    let f = p.fanout();
    f.data(Duration::from_millis(5), b"before\n");
    let reader = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut s = StdStream::connect(&path).unwrap();
            // A read-only follower that types anyway is answered, and nothing is sent.
            s.write_all(&Frame::Input(b"reboot\r".to_vec()).encode())
                .unwrap();
            read_frames(&mut s, |fr| matches!(fr, Frame::End(_)))
        })
    };
    let end = Instant::now() + Duration::from_secs(10);
    while f.followers() == 0 {
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f.data(Duration::from_millis(9), b"live\n");
    f.note(Duration::from_millis(10), "power off");
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.finish("run r1 ended").await;
    let (h, frames) = reader.join().unwrap();
    assert_eq!(h, header(false));
    assert_eq!(data_of(&frames), b"before\nlive\n");
    assert!(frames.contains(&Frame::Note {
        t: Duration::from_millis(10),
        text: "power off".into()
    }));
    assert!(frames
        .iter()
        .any(|fr| matches!(fr, Frame::Reply(r) if r.contains("read-only"))));
    assert_eq!(frames.last(), Some(&Frame::End("run r1 ended".into())));
    assert!(!path.exists(), "socket removed at the end");
}

#[tokio::test]
async fn a_dead_socket_is_replaced_and_a_symlink_or_live_socket_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path(), "b1", std::process::id());
    // A killed run's socket: the file is there, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    // Those of killed runs with other pids go too; a live one, another board's and a
    // file that is not a socket stay.
    let dead = socket_path(dir.path(), "b1", 1);
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let live_path = socket_path(dir.path(), "b1", 2);
    let _live = std::os::unix::net::UnixListener::bind(&live_path).unwrap();
    let other = socket_path(dir.path(), "b10", 3);
    drop(std::os::unix::net::UnixListener::bind(&other).unwrap());
    let plain = socket_path(dir.path(), "b1", 4);
    std::fs::write(&plain, "").unwrap();
    let p = Publisher::start(dir.path(), "b1", header(false)).unwrap();
    assert!(!dead.exists());
    assert!(live_path.exists() && other.exists() && plain.exists());
    // A second publisher of the same name while the first lives is refused.
    let e = Publisher::start(dir.path(), "b1", header(false))
        .err()
        .unwrap();
    assert!(e.to_string().contains("is a live socket"), "{e}");
    drop(p);
    assert!(!path.exists());
    // A symlink planted there is neither followed nor removed.
    let target = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = Publisher::start(dir.path(), "b1", header(false))
        .err()
        .unwrap();
    assert!(e.to_string().contains("exists and is not a socket"), "{e}");
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!target.exists());
}

#[tokio::test]
async fn allowed_input_goes_to_the_board_marked_as_the_followers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut board, hil_side) = StdStream::pair().unwrap();
    let log = dir.path().join("console.log");
    let console = Console::from_stream(hil_side, &log, "t").unwrap();
    let p = Publisher::start(dir.path(), "b1", header(true)).unwrap();
    console.publish_to(p.fanout());
    let path = p.path().to_path_buf();
    let typed = std::thread::spawn(move || {
        let mut s = StdStream::connect(&path).unwrap();
        s.write_all(&Frame::Input(b"echo hi\r".to_vec()).encode())
            .unwrap();
        read_frames(&mut s, |fr| matches!(fr, Frame::End(_)))
    });
    board
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = [0u8; 8];
    tokio::task::spawn_blocking(move || {
        board.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"echo hi\r");
    })
    .await
    .unwrap();
    p.finish("run r1 ended").await;
    let (_, frames) = typed.join().unwrap();
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Reply(_))),
        "{frames:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("### hil: input from a follower of the run (uid "),
        "{text}"
    );
    assert!(text.contains(": \"echo hi\\r\""), "{text}");
}
