//! A console behind a console server reached by SSH, against the real programs a lab's
//! console server runs: Debian's dropbear as the SSH server (on 127.0.0.1) and busybox's
//! `microcom` as the attach command, on a pty standing in for the USB-serial adapter. The
//! link is cut by a proxy in front of dropbear, as a lab network drops it.
//!
//! dropbear finds a user's authorized keys only under the user's home directory, so it
//! runs in a mount namespace of its own where temporary directories are mounted over
//! root's home and over /var/lock (where microcom leaves its lock files): nothing outside
//! that namespace sees them, and they end with dropbear.

use super::reopen::Target;
use super::tests::{log_text, received_until, Adapter};
use super::*;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};

fn key_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fake-board")
}

/// What this test needs (root, for the mount namespace, and programs); `None` when all
/// is there. Under CI a missing one
/// fails the test (the CI script installs them), elsewhere it is skipped, saying so.
fn missing_programs() -> Option<String> {
    let missing: Vec<&str> = ["dropbear", "dropbearconvert", "busybox", "unshare"]
        .into_iter()
        .filter(|p| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("root (for dropbear's mount namespace)".into());
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// dropbear on 127.0.0.1:`port`, logging in root with the fake board's client key;
/// killed with its whole process group when dropped.
struct ConsoleServer {
    child: Child,
    _dir: tempfile::TempDir,
    stderr: PathBuf,
}

impl ConsoleServer {
    fn start(port: u16) -> ConsoleServer {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::copy(
            key_dir().join("client_ed25519.pub"),
            home.join(".ssh/authorized_keys"),
        )
        .unwrap();
        let host_key = dir.path().join("host_key");
        let out = Command::new("dropbearconvert")
            .args(["openssh", "dropbear"])
            .arg(key_dir().join("ssh_host_ed25519"))
            .arg(&host_key)
            .output()
            .unwrap();
        assert!(out.status.success(), "dropbearconvert: {out:?}");
        // microcom's lock files (LCK..tty): in the namespace's own /var/lock, so none is
        // left behind on this machine when a session is killed.
        let lock = dir.path().join("lock");
        std::fs::create_dir(&lock).unwrap();
        let stderr = dir.path().join("dropbear.log");
        let script = format!(
            "mount --bind '{}' \"$(getent passwd root | cut -d: -f6)\" && mount --bind '{}' /var/lock && exec dropbear -F -E -s -p 127.0.0.1:{port} -r '{}' -P '{}'",
            home.display(),
            lock.display(),
            host_key.display(),
            dir.path().join("pid").display(),
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .expect("unshare");
        let server = ConsoleServer {
            child,
            _dir: dir,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dropbear did not listen on 127.0.0.1:{port}: {}",
                std::fs::read_to_string(&server.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for ConsoleServer {
    fn drop(&mut self) {
        // The group: dropbear and the session processes it forked.
        // SAFETY: kill(2) on the process group of a child this test spawned.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A TCP proxy to `upstream` whose connections the test can cut.
struct Proxy {
    port: u16,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let c = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            port,
            conns,
            accept,
        }
    }

    /// Drops every connection now open (both sides see it closed).
    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

fn free_port() -> u16 {
    super::ser2net::free_port().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_server_over_ssh_runs_microcom_and_logs_in_again_after_the_link_drops() {
    if let Some(missing) = missing_programs() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{missing} missing (.ci/run installs dropbear-bin and busybox)"
        );
        eprintln!("SKIPPED: {missing} not installed (apt-get install dropbear-bin busybox); the console-server test did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("usb-FTDI_console-server-if00");
    let log = dir.path().join("console.log");
    let mut adapter = Adapter::plug(&link);
    let server_port = free_port();
    let _server = ConsoleServer::start(server_port);
    let proxy = Proxy::start(server_port).await;
    let pub_line = std::fs::read_to_string(key_dir().join("ssh_host_ed25519.pub")).unwrap();
    let login = crate::ssh::SshTarget {
        host: "127.0.0.1".into(),
        port: proxy.port,
        user: "root".into(),
        identity: key_dir().join("client_ed25519"),
        host_key: crate::ssh::parse_public_key(&pub_line).unwrap().1,
    };
    let target = Target::Ssh {
        login,
        command: format!("busybox microcom -s 115200 {}", link.display()),
    };
    let console = Console::open_target(
        target,
        115_200,
        Some(Duration::from_secs(20)),
        &log,
        "console server",
    )
    .await
    .unwrap();
    let mut rx = console.subscribe();

    // microcom opens the line a moment after the login: the board repeats itself until
    // its output comes through, then prints a line with 0xFF, which arrives as it is.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        adapter.master.write_all(b"ready\r\n").unwrap();
        match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            Ok(Some(Event::Data(d))) if d.windows(5).any(|w| w == b"ready") => break,
            Ok(Some(Event::Closed(r))) => panic!("closed: {r}"),
            _ => assert!(Instant::now() < deadline, "{}", log_text(&log)),
        }
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {}
    adapter
        .master
        .write_all(b"U-Boot 2024.01 \xff banner\r\n")
        .unwrap();
    let got = received_until(&mut rx, b"banner\r\n").await;
    assert_eq!(got, b"U-Boot 2024.01 \xff banner\r\n");

    // What hil types reaches the line through the server.
    console.send(b"printenv\r".to_vec());
    let (mut adapter, typed) = tokio::task::spawn_blocking(move || {
        let t = adapter.read_until(b"printenv\r", Duration::from_secs(10));
        (adapter, t)
    })
    .await
    .unwrap();
    assert!(typed.ends_with(b"printenv\r"), "{typed:?}");

    // The link drops: hil logs in again, runs the command again and logs one gap.
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(20);
    while console.gaps() == 0 {
        assert!(
            Instant::now() < deadline,
            "no new login: {}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        adapter.master.write_all(b"again\r\n").unwrap();
        match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            Ok(Some(Event::Data(d))) if d.windows(5).any(|w| w == b"again") => break,
            Ok(Some(Event::Closed(r))) => panic!("closed: {r}"),
            _ => assert!(Instant::now() < deadline, "{}", log_text(&log)),
        }
    }
    assert_eq!(console.closed_reason(), None);
    let text = log_text(&log);
    let gaps = console.gaps() as usize;
    assert_eq!(
        text.matches("### hil: console gap: ").count(),
        gaps,
        "{text}"
    );
    // A login that comes before the server has ended the cut session finds that
    // session's microcom still holding the line's lock: microcom says so and exits, and hil
    // logs in again a second later. Every gap but the first is one of those.
    let locked = text
        .matches("microcom: can't create '/var/lock/LCK..")
        .count();
    assert_eq!(locked, gaps - 1, "{text}");
    assert!(
        text.contains(&format!(
            "(ssh://root@127.0.0.1:{} (busybox microcom -s 115200 {}) reconnected;",
            proxy.port,
            link.display()
        )),
        "{text}"
    );
    assert_eq!(text.matches("U-Boot 2024.01").count(), 1, "{text}");
}
