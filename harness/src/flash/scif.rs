//! The `flash-writer` backend: drives a Renesas R-Car Gen3 board in SCIF download mode over
//! its serial port. The writer's S-record goes to the boot ROM (`please send !`), then each
//! image is written into the serial flash with `XLS2` (S-records) or `XLS3` (binary), the
//! dialogues played by [`super::flash_writer`]'s plans. Every upload is paced for the
//! port's baud rate in chunks no larger than the SCIF's receive FIFO, because the line has
//! no flow control and the writer loses what it cannot take.
//!
//! Everything the board prints goes to `flash.log` as it arrives, with hil's own lines
//! (answers given, uploads sent, the range the writer reports as saved) between.
//!
//! Errors: the board silent (no prompt) and the writer's hardware errors (`ORER`, `DEVICE
//! ID Error`) are lab trouble; an image the writer refuses because of its addresses or
//! size is a configuration problem. An S-record the writer refuses is the file's fault
//! when the file itself has a bad record, and the serial link's when the file is intact.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serialport::SerialPort;

use super::backend::{blocking, cancelled, configuration, FlashLog, Image, Limit};
use super::flash_writer::{
    classify, detect_prompt, paced_chunks, save_information, srecord_span, Dialogue, DialogueError,
    FwErrorKind, FwOutcome, LoadWriterPlan, Next, Prompt, Reply, SpiFlash, Xls2Plan, Xls3Plan,
};
use super::FlashClass;
use crate::config::flash::{FlashWriterFlash, ImageFormat, FLASH_WRITER_FLASH_END};
use crate::error::StepError;

/// Bytes written to the port at once: the R-Car SCIF's receive FIFO. Each chunk is
/// followed by its wire time plus a margin, so the FIFO is empty before the next arrives.
pub const CHUNK: usize = 16;

/// How long the board may stay silent while hil waits for a prompt or a result. The first
/// prompt gets longer: the board may be powered on only now.
const FIRST_PROMPT: Duration = Duration::from_secs(30);
const SILENCE: Duration = Duration::from_secs(15);

/// An input file, read once, checked and hashed before the board is touched.
struct Input {
    key: String,
    path: PathBuf,
    bytes: Vec<u8>,
    sha: String,
    /// For S-records: the data span; the flash range the writer must report follows.
    span: Option<(u32, u32)>,
}

fn read_input(key: &str, path: &str, srec: bool) -> Result<Input, StepError> {
    let p = PathBuf::from(path);
    let bytes = std::fs::read(&p)
        .map_err(|e| StepError::Infra(format!("{key}: {path} cannot be read: {e}")))?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let span = if srec {
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            configuration(format!("{key}: {path} is not an S-record file (not text)"))
        })?;
        // Only the shape is checked here: a bad checksum is for the writer to find, so
        // the board's answer is tested; the file is re-checked if it complains.
        let first = text.lines().map(str::trim).find(|l| !l.is_empty());
        if !first.is_some_and(|l| l.starts_with('S')) {
            return Err(configuration(format!(
                "{key}: {path} is not an S-record file (its first line does not start with S)"
            )));
        }
        srecord_span(text).ok()
    } else {
        if bytes.is_empty() {
            return Err(configuration(format!("{key}: {path} is empty")));
        }
        None
    };
    Ok(Input {
        key: key.to_string(),
        path: p,
        bytes,
        sha,
        span,
    })
}

/// Runs the backend; returns `(name, path, sha256)` of the writer and every image.
pub(super) async fn flash_writer(
    cfg: &FlashWriterFlash,
    log: &FlashLog,
    limit: Limit,
) -> Result<Vec<Image>, StepError> {
    let writer = read_input("flash.writer", &cfg.writer, true)?;
    log.line(&format!(
        "flash-writer: writer {} sha256 {}",
        cfg.writer, writer.sha
    ));
    let mut images = Vec::new();
    for (i, im) in cfg.images.iter().enumerate() {
        let key = format!("flash.images[{i}].file");
        let input = read_input(&key, &im.file, im.format == ImageFormat::Srec)?;
        let len = u32::try_from(input.bytes.len()).unwrap_or(u32::MAX);
        if im.format == ImageFormat::Binary
            && im
                .flash_addr
                .checked_add(len - 1)
                .is_none_or(|e| e > FLASH_WRITER_FLASH_END)
        {
            return Err(configuration(format!(
                "{key}: {} ({len} bytes) at flash_addr {:#x} does not fit in the flash (it ends at {FLASH_WRITER_FLASH_END:#x})",
                im.file, im.flash_addr
            )));
        }
        log.line(&format!(
            "flash-writer: image {} = {} ({} bytes, {:?}) at flash H'{:08X}, sha256 {}",
            im.name,
            im.file,
            input.bytes.len(),
            im.format,
            im.flash_addr,
            input.sha
        ));
        images.push((im.clone(), input));
    }
    let mut report = vec![(
        "flash-writer".to_string(),
        cfg.writer.clone(),
        writer.sha.clone(),
    )];
    report.extend(
        images
            .iter()
            .map(|(im, inp)| (im.name.clone(), im.file.clone(), inp.sha.clone())),
    );

    let (port, baud, thread_log) = (cfg.port.clone(), cfg.baud, log.clone());
    let what = format!("flash-writer on {port}");
    blocking(limit, &what, move |cancel| {
        let mut s = Scif::open(&port, baud, thread_log, cancel)?;
        s.load_writer(&writer)?;
        for (im, input) in &images {
            s.write_image(im, input)?;
        }
        s.log.line("flash-writer: all images written");
        Ok(())
    })
    .await?;
    Ok(report)
}

struct Scif<'a> {
    port: Box<dyn SerialPort>,
    port_name: String,
    baud: u32,
    log: FlashLog,
    cancel: &'a AtomicBool,
    /// What the board printed since the last answer was started.
    buf: String,
    last_rx: Instant,
}

impl<'a> Scif<'a> {
    fn open(
        port: &str,
        baud: u32,
        log: FlashLog,
        cancel: &'a AtomicBool,
    ) -> Result<Scif<'a>, StepError> {
        let p = serialport::new(port, baud)
            .timeout(Duration::from_millis(20))
            .open()
            .map_err(|e| StepError::Infra(format!("flash.port: cannot open {port}: {e}")))?;
        log.line(&format!(
            "flash-writer: opened {port} at {baud} baud; waiting for the boot ROM (board powered in SCIF download mode)"
        ));
        Ok(Scif {
            port: p,
            port_name: port.to_string(),
            baud,
            log,
            cancel,
            buf: String::new(),
            last_rx: Instant::now(),
        })
    }

    /// Reads what arrived within the port's timeout into `buf` and the log.
    fn read_some(&mut self) -> Result<usize, StepError> {
        let mut b = [0u8; 4096];
        match self.port.read(&mut b) {
            Ok(0) => Ok(0),
            Ok(n) => {
                let got = &b[..n];
                self.log.raw(got);
                self.buf.push_str(&String::from_utf8_lossy(got));
                self.last_rx = Instant::now();
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(StepError::Infra(format!(
                "flash.port {}: read failed: {e}",
                self.port_name
            ))),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StepError> {
        use std::io::Write;
        self.port.write_all(bytes).map_err(|e| {
            StepError::Infra(format!("flash.port {}: write failed: {e}", self.port_name))
        })
    }

    fn check_cancel(&self) -> Result<(), StepError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        Ok(())
    }

    fn load_writer(&mut self, writer: &Input) -> Result<(), StepError> {
        let mut d = LoadWriterPlan {
            mot: writer.path.clone(),
        }
        .dialogue();
        let outcome = self.play(&mut d, "loading the Flash Writer", writer, FIRST_PROMPT)?;
        if let FwOutcome::WriterReady(b) = outcome {
            self.log
                .line(&format!("flash-writer: writer running: {}", b.line));
        }
        Ok(())
    }

    fn write_image(
        &mut self,
        im: &crate::config::flash::FlashWriterImage,
        input: &Input,
    ) -> Result<(), StepError> {
        let (mut d, cmd) = match im.format {
            ImageFormat::Srec => (
                Xls2Plan {
                    image_addr: im.program_addr.unwrap_or_default(),
                    flash_addr: im.flash_addr,
                    srec: input.path.clone(),
                    flash: SpiFlash::HyperFlash,
                }
                .dialogue(),
                "XLS2",
            ),
            ImageFormat::Binary => (
                Xls3Plan {
                    size: u32::try_from(input.bytes.len()).unwrap_or(u32::MAX),
                    flash_addr: im.flash_addr,
                    bin: input.path.clone(),
                    flash: SpiFlash::HyperFlash,
                }
                .dialogue(),
                "XLS3",
            ),
        };
        let what = format!("{cmd} of {} ({})", im.name, im.file);
        self.play(&mut d, &what, input, SILENCE)?;
        // The save report comes after `complete!`: read until the prompt is back.
        let at = self
            .buf
            .rfind("complete!")
            .map_or(0, |i| i + "complete!".len());
        self.buf.drain(..at);
        let started = Instant::now();
        while detect_prompt(&self.buf) != Some(Prompt::CommandPrompt) {
            self.check_cancel()?;
            self.read_some()?;
            if started.elapsed() > SILENCE {
                return Err(StepError::Infra(format!(
                    "{what}: the writer printed no '>' prompt within {} s after the save",
                    SILENCE.as_secs()
                )));
            }
        }
        let expected = match (im.format, input.span, im.program_addr) {
            (ImageFormat::Srec, Some((lo, hi)), Some(top)) => {
                let start = im.flash_addr.wrapping_add(lo.wrapping_sub(top));
                Some((start, start.wrapping_add(hi - lo)))
            }
            (ImageFormat::Binary, _, _) => Some((
                im.flash_addr,
                im.flash_addr + (input.bytes.len() as u32 - 1),
            )),
            _ => None,
        };
        let saved = save_information(&self.buf);
        self.log.line(&format!(
            "flash-writer: {what}: writer saved {}; expected {}",
            range_text(saved),
            range_text(expected)
        ));
        if saved != expected || saved.is_none() {
            return Err(StepError::Infra(format!(
                "{what}: the writer saved {} but the image is {}: bytes were lost or changed on the serial link (see {})",
                range_text(saved),
                range_text(expected),
                self.log.path().display()
            )));
        }
        Ok(())
    }

    /// Plays one dialogue to its end; sends files when it asks for them.
    fn play(
        &mut self,
        d: &mut Dialogue,
        what: &str,
        input: &Input,
        first_wait: Duration,
    ) -> Result<FwOutcome, StepError> {
        let mut wait = first_wait;
        self.last_rx = Instant::now();
        loop {
            self.check_cancel()?;
            self.read_some()?;
            match d.advance(&self.buf) {
                Ok(Next::Wait) => {
                    if self.last_rx.elapsed() > wait {
                        return Err(self.silent(what, wait));
                    }
                }
                Ok(Next::Reply(r)) => {
                    self.buf.clear();
                    self.answer(&r, input, what)?;
                    self.last_rx = Instant::now();
                    wait = SILENCE;
                }
                Ok(Next::Finished(o)) => return Ok(o),
                Err(e) => return Err(self.refused(e, what, input)),
            }
        }
    }

    fn silent(&self, what: &str, wait: Duration) -> StepError {
        let hint = if self.buf.trim().is_empty() {
            format!(
                "the board printed nothing on {} for {} s; check that it is powered with the boot mode (MD) switches set to SCIF download mode and that the serial cable is on its SCIF console",
                self.port_name,
                wait.as_secs()
            )
        } else {
            format!(
                "the board stopped printing for {} s; its last output: '{}'",
                wait.as_secs(),
                last_line(&self.buf)
            )
        };
        StepError::Infra(format!("{what}: {hint}"))
    }

    fn answer(&mut self, r: &Reply, input: &Input, what: &str) -> Result<(), StepError> {
        if let Some(typed) = r.typed_bytes() {
            self.log.line(&format!(
                "flash-writer: answer {:?}",
                String::from_utf8_lossy(&typed)
            ));
            return self.write(&typed);
        }
        self.send_file(input, what)
    }

    /// Sends the file paced for the baud rate, watching the board's output between chunks
    /// so an error it prints stops the upload.
    fn send_file(&mut self, input: &Input, what: &str) -> Result<(), StepError> {
        let started = Instant::now();
        self.log.line(&format!(
            "flash-writer: {what}: sending {} ({} bytes) in {CHUNK}-byte chunks paced for {} baud",
            input.path.display(),
            input.bytes.len(),
            self.baud
        ));
        let data = input.bytes.clone();
        for (chunk, delay) in paced_chunks(&data, self.baud, CHUNK) {
            self.check_cancel()?;
            self.write(chunk)?;
            std::thread::sleep(delay);
            if self.port.bytes_to_read().unwrap_or(0) > 0 {
                self.read_some()?;
                if matches!(classify(&self.buf), Some(FwOutcome::Error(_))) {
                    // Let the rest of the message arrive, then stop sending.
                    let until = Instant::now() + Duration::from_millis(300);
                    while Instant::now() < until {
                        self.read_some()?;
                    }
                    self.log.line(&format!(
                        "flash-writer: {what}: the board reported an error; upload stopped"
                    ));
                    return Ok(());
                }
            }
        }
        self.log.line(&format!(
            "flash-writer: {what}: sent in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    fn refused(&self, e: DialogueError, what: &str, input: &Input) -> StepError {
        let log = self.log.path();
        if let DialogueError::Writer(fw) = &e {
            if fw.kind == FwErrorKind::SrecordRejected {
                let text = String::from_utf8_lossy(&input.bytes);
                return match srecord_span(&text) {
                    Err(bad) => configuration(format!(
                        "{}: {} is a bad S-record file ({bad}); {what}: {e}",
                        input.key,
                        input.path.display()
                    )),
                    Ok(_) => StepError::Infra(format!(
                        "{what}: {e}, yet {} is intact: the serial link changed or lost bytes (see {})",
                        input.path.display(),
                        log.display()
                    )),
                };
            }
        }
        let msg = format!("{what}: {e} (see {})", log.display());
        match e.class() {
            FlashClass::Configuration => configuration(msg),
            FlashClass::Ok | FlashClass::Infrastructure | FlashClass::WrongMode => {
                StepError::Infra(msg)
            }
        }
    }
}

fn range_text(r: Option<(u32, u32)>) -> String {
    match r {
        Some((a, b)) => format!("H'{a:08X}-H'{b:08X}"),
        None => "no range".into(),
    }
}

fn last_line(s: &str) -> String {
    super::screen_lines(s)
        .into_iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::flash::{FlashCfg, FlashWriterImage};
    use crate::flash::backend::flash;
    use crate::flash::backend::Tools;
    use rcar_bootrom_sim::{Options, Sim};
    use std::path::Path;

    /// `data` as S-records: S0 header, S3 records of 32 bytes from `addr`, S7 entry.
    fn srec(addr: u32, data: &[u8]) -> String {
        fn rec(kind: u8, body: &[u8]) -> String {
            let count = u8::try_from(body.len() + 1).unwrap();
            let sum = body.iter().fold(count, |a, &x| a.wrapping_add(x));
            format!(
                "S{kind}{count:02X}{}{:02X}\r\n",
                hex::encode_upper(body),
                !sum
            )
        }
        let mut out = rec(0, &[0, 0, b'h', b'i', b'l']);
        for (i, c) in data.chunks(32).enumerate() {
            let mut body = (addr + 32 * i as u32).to_be_bytes().to_vec();
            body.extend_from_slice(c);
            out.push_str(&rec(3, &body));
        }
        out.push_str(&rec(7, &addr.to_be_bytes()));
        out
    }

    fn pattern(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    struct Bench {
        dir: tempfile::TempDir,
        sim: Option<Sim>,
        cfg: FlashWriterFlash,
    }

    impl Bench {
        /// A board on a pty with the writer and no images yet.
        fn new(opts: impl FnOnce(&mut Options)) -> Bench {
            let dir = tempfile::tempdir().unwrap();
            let mut o = Options::new(dir.path().join("hyperflash.img"));
            opts(&mut o);
            let sim = Sim::start(o).unwrap();
            let writer = dir
                .path()
                .join("AArch64_Flash_writer_SCIF_DUMMY_CERT_E6300400_sim.mot");
            std::fs::write(&writer, srec(0xE630_0400, &pattern(2048, 1))).unwrap();
            let cfg = FlashWriterFlash {
                writer: writer.display().to_string(),
                port: sim.path.clone(),
                baud: 115_200,
                images: Vec::new(),
                timeout_s: 120,
            };
            Bench {
                dir,
                sim: Some(sim),
                cfg,
            }
        }

        fn file(&self, name: &str, bytes: &[u8]) -> String {
            let p = self.dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p.display().to_string()
        }

        fn add(
            &mut self,
            name: &str,
            file: String,
            format: ImageFormat,
            program_addr: Option<u32>,
            flash_addr: u32,
        ) {
            self.cfg.images.push(FlashWriterImage {
                name: name.into(),
                file,
                format,
                program_addr,
                flash_addr,
            });
        }

        async fn flash(&self) -> Result<crate::flash::backend::FlashReport, StepError> {
            flash(
                &FlashCfg::FlashWriter(self.cfg.clone()),
                &self.dir.path().join("run"),
                &Tools::default(),
            )
            .await
        }

        fn flash_bytes(&self, at: usize, len: usize) -> Vec<u8> {
            let all = std::fs::read(self.dir.path().join("hyperflash.img")).unwrap();
            all[at..at + len].to_vec()
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("run/flash.log")).unwrap()
        }

        fn events(&self) -> Vec<String> {
            self.sim.as_ref().unwrap().events()
        }
    }

    impl Drop for Bench {
        fn drop(&mut self) {
            if let Some(s) = self.sim.take() {
                s.stop().unwrap();
            }
        }
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
    }

    fn mkenvimage(dir: &Path, vars: &str, size: usize) -> Vec<u8> {
        let src = dir.join("env.txt");
        std::fs::write(&src, vars).unwrap();
        let out = dir.join("env.bin");
        let st = std::process::Command::new("mkenvimage")
            .arg("-s")
            .arg(size.to_string())
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .status()
            .expect("mkenvimage (u-boot-tools) is installed");
        assert!(st.success());
        std::fs::read(out).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flash_writer_writes_binary_env_and_srecord_images_into_the_flash() {
        let mut b = Bench::new(|_| {});
        let uboot = pattern(24 * 1024 + 3, 7);
        let env = mkenvimage(
            b.dir.path(),
            "hil_flashed=by-flash-writer\nbootdelay=1\n",
            0x2000,
        );
        let bl2 = pattern(1000, 9);
        let f = b.file("u-boot.bin", &uboot);
        b.add("u-boot", f, ImageFormat::Binary, None, 0);
        let f = b.file("env.bin", &env);
        b.add("env", f, ImageFormat::Binary, None, 0x0010_0000);
        // Program top 0xE6304000, records from 0xE6304100: stored 0x100 past the save address.
        let f = b.file("bl2.srec", srec(0xE630_4100, &bl2).as_bytes());
        b.add("bl2", f, ImageFormat::Srec, Some(0xE630_4000), 0x0004_0000);
        let report = b
            .flash()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", b.log()));

        // The flash holds exactly those bytes, where they were meant to go.
        assert_eq!(sha(&b.flash_bytes(0, uboot.len())), sha(&uboot));
        assert_eq!(sha(&b.flash_bytes(0x10_0000, env.len())), sha(&env));
        assert_eq!(b.flash_bytes(0x4_0100, bl2.len()), bl2);
        // Erased (0xFF) around them, as the writer's sector erase leaves it.
        assert!(b.flash_bytes(uboot.len(), 16).iter().all(|&x| x == 0xFF));
        assert_eq!(report.backend, "flash-writer");
        let names: Vec<&str> = report.images.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(names, ["flash-writer", "u-boot", "env", "bl2"]);
        assert_eq!(report.images[1].2, sha(&uboot));
        assert_eq!(report.images[2].2, sha(&env));
        let log = b.log();
        for needle in [
            "SCIF Download mode (w/o verification)",
            "Flash writer for R-Car H3/M3/M3N Series V1.06",
            "please send ! (binary)",
            "please send ! ('.' & CR stop load)",
            "SAVE SPI-FLASH....... complete!",
            "XLS3 of u-boot (",
            "writer saved H'00000000-H'00006002; expected H'00000000-H'00006002",
            "writer saved H'00040100-H'000404E7; expected H'00040100-H'000404E7",
            &format!("sha256 {}", sha(&uboot)),
        ] {
            assert!(log.contains(needle), "{needle:?} not in\n{log}");
        }
        assert!(!log.contains("ORER"), "{log}");
        let ev = b.events();
        assert!(
            ev.iter()
                .any(|e| e.starts_with("boot rom: loaded H'E6300400-H'E6300BFF")),
            "{ev:?}"
        );
        assert!(!ev.iter().any(|e| e.starts_with("overrun")), "{ev:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_checksum_in_the_image_file_is_refused_by_the_writer_as_configuration() {
        let mut b = Bench::new(|_| {});
        let mut text = srec(0x5000_0000, &pattern(512, 3));
        // Record 4 (the third S3): change its checksum's last digit.
        let lines: Vec<&str> = text.split("\r\n").collect();
        let bad = lines[3].to_string();
        let last = bad.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &bad[..bad.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        text = text.replace(&bad, &flipped);
        let f = b.file("bad.srec", text.as_bytes());
        b.add("bl31", f, ImageFormat::Srec, Some(0x5000_0000), 0x18_0000);
        let e = b.flash().await.unwrap_err();
        let m = match &e {
            StepError::Blocked(m) => m.clone(),
            other => panic!(
                "expected a configuration problem, got {other:?}\n{}",
                b.log()
            ),
        };
        assert!(
            m.starts_with("configuration: flash.images[0].file: "),
            "{m}"
        );
        assert!(m.contains("line 4: checksum"), "{m}");
        assert!(
            m.contains("writer printed 'S-record checksum error: record 4"),
            "{m}"
        );
        // The board said so on its console, and nothing was saved.
        let log = b.log();
        assert!(log.contains("S-record checksum error: record 4"), "{log}");
        assert!(!log.contains("SAVE SPI-FLASH"), "{log}");
        assert!(b
            .events()
            .iter()
            .any(|e| e.starts_with("refused: S-record checksum error")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unpaced_upload_overruns_the_fifo_and_is_lab_trouble() {
        let b = Bench::new(|_| {});
        // Stand in for a host that does not pace: write the whole writer at once.
        let mut port = serialport::new(&b.cfg.port, 115_200)
            .timeout(Duration::from_millis(50))
            .open()
            .unwrap();
        let mut seen = String::new();
        let until = Instant::now() + Duration::from_secs(10);
        while !seen.contains("please send !") && Instant::now() < until {
            let mut buf = [0u8; 512];
            if let Ok(n) = port.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        assert!(seen.contains("please send !"), "{seen}");
        let writer = std::fs::read(&b.cfg.writer).unwrap();
        port.write_all(&writer).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while !seen.contains("ORER") && Instant::now() < until {
            let mut buf = [0u8; 512];
            if let Ok(n) = port.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        assert!(seen.contains("ORER"), "{seen}");
        let ev = b.events();
        assert!(ev.iter().any(|e| e.starts_with("overrun: ")), "{ev:?}");
        // hil's classification of that console text: lost bytes, the lab's trouble.
        match classify(&seen) {
            Some(FwOutcome::Error(e)) => {
                assert_eq!(e.kind, FwErrorKind::Overrun);
                assert_eq!(e.class(), FlashClass::Infrastructure);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pacing_for_a_faster_line_than_the_board_has_is_caught_as_lost_bytes() {
        let mut b = Bench::new(|_| {});
        // The board's SCIF runs at 115200; hil is told 2 Mbaud and sends 17 times too fast.
        b.cfg.baud = 2_000_000;
        let f = b.file("u-boot.bin", &pattern(4096, 5));
        b.add("u-boot", f, ImageFormat::Binary, None, 0);
        let t = Instant::now();
        let m = match b.flash().await {
            Err(StepError::Infra(m)) => m,
            other => panic!("{other:?}\n{}", b.log()),
        };
        assert!(
            m.starts_with("loading the Flash Writer: flash writer: SCIF receive overrun"),
            "{m}"
        );
        assert!(m.contains("(writer printed 'ORER')"), "{m}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let log = b.log();
        assert!(
            log.contains("the board reported an error; upload stopped"),
            "{log}"
        );
        assert!(b.events().iter().any(|e| e.starts_with("overrun: ")) || log.contains("ORER"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_board_that_never_answers_is_infrastructure() {
        let dir = tempfile::tempdir().unwrap();
        // A pty nobody plays the board on: the port opens, nothing is printed.
        let (master, path) = {
            let m = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
            assert!(m >= 0);
            unsafe {
                libc::grantpt(m);
                libc::unlockpt(m);
            }
            let mut name = [0 as libc::c_char; 128];
            unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
            let p = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            (m, p)
        };
        let writer = dir.path().join("w.mot");
        std::fs::write(&writer, srec(0xE630_0400, &[1, 2, 3, 4])).unwrap();
        let cfg = FlashWriterFlash {
            writer: writer.display().to_string(),
            port: path,
            baud: 115_200,
            images: vec![],
            timeout_s: 2,
        };
        let e = flash(&FlashCfg::FlashWriter(cfg), dir.path(), &Tools::default())
            .await
            .unwrap_err();
        unsafe { libc::close(master) };
        match e {
            StepError::Infra(m) => assert!(m.contains("flash.timeout_s = 2 s"), "{m}"),
            other => panic!("{other:?}"),
        }
        let log = std::fs::read_to_string(dir.path().join("flash.log")).unwrap();
        assert!(log.contains("waiting for the boot ROM"), "{log}");
    }
}
