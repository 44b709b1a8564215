//! `rkdeveloptool` (Rockchip rockusb over USB): what its output means.
//!
//! Owns the parsing of `ld`, the classification of every message the tool prints for the
//! commands hil runs (`ld`, `db`, `ul`, `wl`, `ef`, `rd`), the `wl` progress, and the plan
//! of the Maskrom flash sequence. Running the tool is the caller's job.
//!
//! Facts taken from the tool's `main.cpp` (rockchip-linux/rkdeveloptool) where the
//! transcripts do not show them:
//! - errors are wrapped in colour escapes (`ESC[30;41m ... ESC[0m`) and progress is redrawn
//!   in place with cursor-up/erase-line, so all matching is done on [`screen_lines`];
//! - a failed command exits with status 1 (`return -0xFF` from `main`), but `ld` with no
//!   device exits 0: only the text tells "no device" apart;
//! - `LocationID` is printed with `%x`, i.e. in hexadecimal.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{screen_lines, FlashClass};

/// The boot mode `ld` reports for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsbMode {
    /// Boot ROM: only `db`/`ul` (and commands after a loader was downloaded) work.
    Maskrom,
    /// A loader (U-Boot rockusb or usbplug) answers: `db`/`ul` are refused.
    Loader,
    /// Anything else the tool printed (it prints `Unknown` for other USB types).
    Unknown(String),
}

impl UsbMode {
    fn parse(word: &str) -> UsbMode {
        match word {
            "Maskrom" => UsbMode::Maskrom,
            "Loader" => UsbMode::Loader,
            other => UsbMode::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for UsbMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsbMode::Maskrom => f.write_str("Maskrom"),
            UsbMode::Loader => f.write_str("Loader"),
            UsbMode::Unknown(s) => write!(f, "{s}"),
        }
    }
}

/// One line of `rkdeveloptool ld`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RockusbDevice {
    pub devno: u32,
    pub vid: u16,
    pub pid: u16,
    /// USB bus number << 8 | port number, as printed (hexadecimal) by the tool.
    pub location_id: u32,
    pub mode: UsbMode,
}

impl RockusbDevice {
    /// The SoC family, when the VID:PID is one hil knows (see [`soc_of`]).
    pub fn soc(&self) -> Option<&'static str> {
        soc_of(self.vid, self.pid)
    }
}

/// Why `ld` output gave no device list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdError {
    /// `not found any devices!`: nothing in Maskrom or Loader mode on the USB bus.
    #[error("no rockusb device on USB (rkdeveloptool printed '{line}'); check the board's USB cable and that it is in Maskrom or Loader mode")]
    NoDevice { line: String },
    /// A `DevNo=` line that does not have the documented shape.
    #[error("unparsable rkdeveloptool ld line: '{line}'")]
    Malformed { line: String },
    /// Neither a device line nor the no-device message: the tool did not run as expected.
    #[error("rkdeveloptool ld printed neither a device nor 'not found any devices!'")]
    NoOutput,
}

impl LdError {
    pub fn class(&self) -> FlashClass {
        FlashClass::Infrastructure
    }
}

static LD_LINE: LazyLock<Regex> = LazyLock::new(|| {
    // Forum and issue copies collapse the tabs to spaces, so any whitespace separates.
    Regex::new(
        r"DevNo=(\d+)\s+Vid=0x([0-9a-fA-F]{1,4}),\s*Pid=0x([0-9a-fA-F]{1,4}),\s*LocationID=([0-9a-fA-F]{1,8})\s+(\S+)",
    )
    .expect("static regex")
});

const NO_DEVICES: &str = "not found any devices!";

/// Parses `rkdeveloptool ld`. Other lines (shell prompts, `lsusb` output a log may hold)
/// are ignored; the exit status is not needed since `ld` exits 0 even with no device.
pub fn parse_ld(output: &str) -> Result<Vec<RockusbDevice>, LdError> {
    let mut devices = Vec::new();
    for line in screen_lines(output) {
        let line = line.trim();
        if line.contains(NO_DEVICES) {
            return Err(LdError::NoDevice {
                line: line.to_string(),
            });
        }
        if line.contains("DevNo=") {
            devices.push(parse_ld_line(line)?);
        }
    }
    if devices.is_empty() {
        return Err(LdError::NoOutput);
    }
    Ok(devices)
}

fn parse_ld_line(line: &str) -> Result<RockusbDevice, LdError> {
    let malformed = || LdError::Malformed {
        line: line.to_string(),
    };
    let c = LD_LINE.captures(line).ok_or_else(malformed)?;
    let field = |i: usize| c.get(i).map_or("", |m| m.as_str());
    Ok(RockusbDevice {
        devno: field(1).parse().map_err(|_| malformed())?,
        vid: u16::from_str_radix(field(2), 16).map_err(|_| malformed())?,
        pid: u16::from_str_radix(field(3), 16).map_err(|_| malformed())?,
        location_id: u32::from_str_radix(field(4), 16).map_err(|_| malformed())?,
        mode: UsbMode::parse(field(5)),
    })
}

/// SoC family of a rockusb VID:PID, limited to the ones seen in the recorded transcripts
/// (the header of each names the board). Several SoCs share a PID (RK3588 and RK3588S are
/// both 2207:350b), so this names the family, not the exact part.
pub fn soc_of(vid: u16, pid: u16) -> Option<&'static str> {
    if vid != 0x2207 {
        return None;
    }
    match pid {
        0x350b => Some("rk3588"), // ROCK 5B (RK3588), ROCK 5A (RK3588S): DOMAIN.md
        0x330c => Some("rk3399"), // NanoPC-T4: rkdeveloptool-maskrom-rd-td-fail-rk3399
        0x330e => Some("rk3308"), // ROCK Pi S: rkdeveloptool-db-creating-comm-object-failed
        0x320b => Some("rk322x"), // RK322x TV box: rkdeveloptool-db-ul-rfi-rci-rcb-rk322x
        0x300a => Some("rk3066"), // RK3066: rkdeveloptool-db-unsupported-in-loader-mode
        _ => None,
    }
}

/// One `rkdeveloptool` invocation hil makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `ld`
    ListDevices,
    /// `db <loader>`: run the loader (usbplug) from RAM; Maskrom only.
    DownloadBoot { loader: PathBuf },
    /// `ul <loader>`: write the loader to the boot medium; Maskrom only.
    UpgradeLoader { loader: PathBuf },
    /// `wl <sector> <image>`
    WriteLba { sector: u32, image: PathBuf },
    /// `ef`
    EraseFlash,
    /// `rd [subcode]`
    ResetDevice { subcode: Option<u8> },
}

impl Step {
    /// The tool's command-line arguments for this step.
    pub fn args(&self) -> Vec<OsString> {
        match self {
            Step::ListDevices => vec!["ld".into()],
            Step::DownloadBoot { loader } => vec!["db".into(), loader.into()],
            Step::UpgradeLoader { loader } => vec!["ul".into(), loader.into()],
            Step::WriteLba { sector, image } => {
                vec!["wl".into(), sector.to_string().into(), image.into()]
            }
            Step::EraseFlash => vec!["ef".into()],
            Step::ResetDevice { subcode: None } => vec!["rd".into()],
            Step::ResetDevice { subcode: Some(c) } => vec!["rd".into(), c.to_string().into()],
        }
    }

    /// The modes the tool accepts for this step (its `check_device_type`).
    pub fn needs(&self) -> ModeNeed {
        match self {
            Step::ListDevices => ModeNeed::Any,
            Step::DownloadBoot { .. } | Step::UpgradeLoader { .. } => ModeNeed::Maskrom,
            _ => ModeNeed::MaskromOrLoader,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Step::ListDevices => "ld",
            Step::DownloadBoot { .. } => "db",
            Step::UpgradeLoader { .. } => "ul",
            Step::WriteLba { .. } => "wl",
            Step::EraseFlash => "ef",
            Step::ResetDevice { .. } => "rd",
        }
    }
}

/// Which boot mode a step needs, for the wrong-mode error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeNeed {
    Any,
    Maskrom,
    MaskromOrLoader,
}

impl fmt::Display for ModeNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModeNeed::Any => "any mode",
            ModeNeed::Maskrom => "Maskrom mode",
            ModeNeed::MaskromOrLoader => "Maskrom or Loader mode",
        })
    }
}

/// Every message hil recognises in rkdeveloptool output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// `Downloading bootloader succeeded.`
    LoaderDownloaded,
    /// `Upgrading loader succeeded.`
    LoaderUpgraded,
    /// `Reset Device OK.`
    ResetOk,
    /// `Erasing flash complete.`
    FlashErased,
    /// `Write LBA from file (N%)`
    WriteProgress(u32),
    /// `not found any devices!` (from `ld`)
    NoDeviceListed,
    /// `Did not find any rockusb device, please plug device in!`
    NoDevice,
    /// `Found too many rockusb devices, please plug devices out!`
    TooManyDevices,
    /// `Creating Comm Object failed!` and the `... quit, creating comm object failed!` forms.
    CommObjectFailed,
    /// `Write LBA failed!`
    WriteFailed,
    /// `Read LBA failed!`
    ReadFailed,
    /// A USB command the device did not answer (`Reset Device failed!`, `Read Flash Info
    /// failed!`, `Downloading bootloader failed!`, ...).
    CommandFailed,
    /// The tool's own log (`log/` beside the binary): `Error:RKU_Write failed, err=-1`.
    UsbLogError,
    /// `The device does not support this operation!`
    WrongMode,
    /// `Opening loader failed, exiting download boot!` (or `... upgrade loader!`)
    BadLoader,
    /// `Write LBA failed, err=N, can't open file: X` (and the `Read LBA` twin)
    BadImageFile,
    /// `Parameter of [XX] command is invalid, please check help!`, `command is invalid!`
    BadArguments,
}

impl Message {
    pub fn class(self) -> FlashClass {
        use Message::*;
        match self {
            LoaderDownloaded | LoaderUpgraded | ResetOk | FlashErased | WriteProgress(_) => {
                FlashClass::Ok
            }
            NoDeviceListed | NoDevice | TooManyDevices | CommObjectFailed | WriteFailed
            | ReadFailed | CommandFailed | UsbLogError => FlashClass::Infrastructure,
            WrongMode => FlashClass::WrongMode,
            BadLoader | BadImageFile | BadArguments => FlashClass::Configuration,
        }
    }
}

/// A recognised message and the screen line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub message: Message,
    pub line: String,
}

/// Literal texts, from DOMAIN.md, the transcripts and `main.cpp`. Order does not matter:
/// no text is a substring of another one with a different meaning (`Write LBA failed!`
/// vs `Write LBA failed, err=`).
const LITERALS: &[(&str, Message)] = &[
    (
        "Downloading bootloader succeeded.",
        Message::LoaderDownloaded,
    ),
    ("Upgrading loader succeeded.", Message::LoaderUpgraded),
    ("Reset Device OK.", Message::ResetOk),
    ("Erasing flash complete.", Message::FlashErased),
    (NO_DEVICES, Message::NoDeviceListed),
    (
        "Did not find any rockusb device, please plug device in!",
        Message::NoDevice,
    ),
    (
        "Found too many rockusb devices, please plug devices out!",
        Message::TooManyDevices,
    ),
    ("Creating Comm Object failed!", Message::CommObjectFailed),
    (
        "quit, creating comm object failed!",
        Message::CommObjectFailed,
    ),
    ("Write LBA failed!", Message::WriteFailed),
    ("Read LBA failed!", Message::ReadFailed),
    ("Downloading bootloader failed!", Message::CommandFailed),
    ("Upgrading loader failed!", Message::CommandFailed),
    ("Reset Device failed!", Message::CommandFailed),
    ("Test Device failed!", Message::CommandFailed),
    ("Reading flash ID failed!", Message::CommandFailed),
    ("Read Flash Info failed!", Message::CommandFailed),
    ("Read Chip Info failed!", Message::CommandFailed),
    ("Read capability Fail!", Message::CommandFailed),
    ("Read GPT failed!", Message::CommandFailed),
    ("Read parameter failed!", Message::CommandFailed),
    ("Not found any partition table!", Message::CommandFailed),
    (
        "Getting flash info from device failed!",
        Message::CommandFailed,
    ),
    (
        "Getting information about rockusb device failed!",
        Message::CommandFailed,
    ),
    (
        "The device does not support this operation!",
        Message::WrongMode,
    ),
    (
        "Opening loader failed, exiting download boot!",
        Message::BadLoader,
    ),
    (
        "Opening loader failed, exiting upgrade loader!",
        Message::BadLoader,
    ),
    ("Write LBA failed, err=", Message::BadImageFile),
    ("Read LBA failed, err=", Message::BadImageFile),
    (
        "command is invalid, please check help!",
        Message::BadArguments,
    ),
    ("command is invalid!", Message::BadArguments),
    ("is invalid, please check!", Message::BadArguments),
];

static PROGRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Write LBA from file \((\d+)%\)").expect("static regex"));

static USB_LOG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Error:\s*\S.*? failed,\s*err=-?\d+").expect("static regex"));

/// Every recognised message in `output`, in the order printed.
pub fn scan(output: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for line in screen_lines(output) {
        let mut found = messages_in(&line);
        found.sort_by_key(|(pos, _)| *pos);
        let shown = line.trim();
        events.extend(found.into_iter().map(|(_, message)| Event {
            message,
            line: shown.to_string(),
        }));
    }
    events
}

fn messages_in(line: &str) -> Vec<(usize, Message)> {
    let mut found: Vec<(usize, Message)> = Vec::new();
    for (text, message) in LITERALS {
        found.extend(line.match_indices(text).map(|(pos, _)| (pos, *message)));
    }
    for c in PROGRESS.captures_iter(line) {
        if let (Some(m), Some(n)) = (c.get(0), c.get(1)) {
            if let Ok(pct) = n.as_str().parse() {
                found.push((m.start(), Message::WriteProgress(pct)));
            }
        }
    }
    found.extend(
        USB_LOG
            .find_iter(line)
            .map(|m| (m.start(), Message::UsbLogError)),
    );
    found
}

/// The last `Write LBA from file (N%)` percentage. The tool redraws the line in place, so
/// a captured stream holds every update; only the last one says how far the write got.
pub fn last_write_progress(output: &str) -> Option<u32> {
    PROGRESS
        .captures_iter(output)
        .filter_map(|c| c.get(1)?.as_str().parse().ok())
        .last()
}

/// A step that did what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOk {
    Devices(Vec<RockusbDevice>),
    LoaderDownloaded,
    LoaderUpgraded,
    /// The last progress line (100 on success).
    Written {
        percent: u32,
    },
    Erased,
    Reset,
}

/// Why a step failed; each variant carries the line that said so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RkError {
    #[error(
        "no rockusb device found: '{line}'; check the USB cable/hub and the board's boot mode"
    )]
    NoDevice { line: String },
    #[error(
        "more than one rockusb device on this host: '{line}'; rkdeveloptool can only drive one"
    )]
    TooManyDevices { line: String },
    #[error("could not open the rockusb device: '{line}'; check USB permissions (udev rule) and the cable")]
    Comm { line: String },
    #[error("the device refused '{step}': it must be in {needed}: '{line}'")]
    WrongMode {
        step: &'static str,
        needed: ModeNeed,
        line: String,
    },
    #[error("loader file {} could not be opened or is not a Rockchip loader: '{line}'", .file.display())]
    BadLoader { file: PathBuf, line: String },
    #[error("image file {} could not be opened: '{line}'", .file.display())]
    BadImage { file: PathBuf, line: String },
    #[error("write to the device failed at {}: '{line}'; check the storage (eMMC seated, SPI flash present)", .percent.map_or("an unknown point".to_string(), |p| format!("{p}%")))]
    WriteFailed { percent: Option<u32>, line: String },
    #[error("'{step}' failed on the device: '{line}'")]
    CommandFailed { step: &'static str, line: String },
    #[error("hil built invalid rkdeveloptool arguments for '{step}': '{line}'")]
    BadArguments { step: &'static str, line: String },
    #[error("'{step}' ended (exit status {}) without its success message; last output: '{tail}'", .exit_status.map_or("unknown".to_string(), |s| s.to_string()))]
    Unrecognised {
        step: &'static str,
        exit_status: Option<i32>,
        tail: String,
    },
}

impl RkError {
    pub fn class(&self) -> FlashClass {
        match self {
            RkError::WrongMode { .. } => FlashClass::WrongMode,
            RkError::BadLoader { .. } | RkError::BadImage { .. } | RkError::BadArguments { .. } => {
                FlashClass::Configuration
            }
            _ => FlashClass::Infrastructure,
        }
    }
}

pub type StepResult = Result<StepOk, RkError>;

/// The class of a step's result, for callers that only need the bucket.
pub fn class_of(result: &StepResult) -> FlashClass {
    match result {
        Ok(_) => FlashClass::Ok,
        Err(e) => e.class(),
    }
}

/// Classifies one invocation from its output and exit status (`None` if unknown or killed
/// by a signal). An error message anywhere wins over a success message, and success needs
/// the step's own success message: the tool exits 0 on some failures (`ld`) and the
/// transcripts show `rd` printing nothing at all.
pub fn classify_step(step: &Step, output: &str, exit_status: Option<i32>) -> StepResult {
    if *step == Step::ListDevices {
        return classify_ld(output);
    }
    let events = scan(output);
    if let Some(err) = events.iter().find_map(|e| error_for(step, e, output)) {
        return Err(err);
    }
    let ok = success_for(step, &events);
    match (ok, exit_status) {
        (Some(ok), None | Some(0)) => Ok(ok),
        _ => Err(RkError::Unrecognised {
            step: step.name(),
            exit_status,
            tail: tail(output),
        }),
    }
}

fn classify_ld(output: &str) -> StepResult {
    match parse_ld(output) {
        Ok(devices) => Ok(StepOk::Devices(devices)),
        Err(LdError::NoDevice { line }) => Err(RkError::NoDevice { line }),
        Err(LdError::Malformed { line }) => Err(RkError::Unrecognised {
            step: "ld",
            exit_status: None,
            tail: line,
        }),
        Err(LdError::NoOutput) => Err(RkError::Unrecognised {
            step: "ld",
            exit_status: None,
            tail: tail(output),
        }),
    }
}

/// The typed error for an error event, with what the step knows (file names, mode).
fn error_for(step: &Step, event: &Event, output: &str) -> Option<RkError> {
    let line = event.line.clone();
    let name = step.name();
    let err = match event.message {
        Message::NoDevice | Message::NoDeviceListed => RkError::NoDevice { line },
        Message::TooManyDevices => RkError::TooManyDevices { line },
        Message::CommObjectFailed => RkError::Comm { line },
        Message::WrongMode => RkError::WrongMode {
            step: name,
            needed: step.needs(),
            line,
        },
        Message::BadLoader => RkError::BadLoader {
            file: step_file(step),
            line,
        },
        Message::BadImageFile => RkError::BadImage {
            file: step_file(step),
            line,
        },
        Message::WriteFailed => RkError::WriteFailed {
            percent: last_write_progress(output),
            line,
        },
        Message::ReadFailed | Message::CommandFailed | Message::UsbLogError => {
            RkError::CommandFailed { step: name, line }
        }
        Message::BadArguments => RkError::BadArguments { step: name, line },
        Message::LoaderDownloaded
        | Message::LoaderUpgraded
        | Message::ResetOk
        | Message::FlashErased
        | Message::WriteProgress(_) => return None,
    };
    Some(err)
}

fn step_file(step: &Step) -> PathBuf {
    match step {
        Step::DownloadBoot { loader } | Step::UpgradeLoader { loader } => loader.clone(),
        Step::WriteLba { image, .. } => image.clone(),
        _ => PathBuf::new(),
    }
}

fn success_for(step: &Step, events: &[Event]) -> Option<StepOk> {
    let has = |m: Message| events.iter().any(|e| e.message == m);
    match step {
        Step::DownloadBoot { .. } => {
            has(Message::LoaderDownloaded).then_some(StepOk::LoaderDownloaded)
        }
        Step::UpgradeLoader { .. } => {
            has(Message::LoaderUpgraded).then_some(StepOk::LoaderUpgraded)
        }
        Step::EraseFlash => has(Message::FlashErased).then_some(StepOk::Erased),
        Step::ResetDevice { .. } => has(Message::ResetOk).then_some(StepOk::Reset),
        Step::WriteLba { .. } => {
            // A complete write always ends on 100%: the tool's percentage is computed on
            // the bytes written so far against the file size.
            let percent = events.iter().rev().find_map(|e| match e.message {
                Message::WriteProgress(p) => Some(p),
                _ => None,
            })?;
            (percent >= 100).then_some(StepOk::Written { percent })
        }
        Step::ListDevices => None,
    }
}

/// The last few non-empty screen lines, for error messages.
fn tail(output: &str) -> String {
    let lines: Vec<String> = screen_lines(output)
        .into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

/// Why no flash plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the device is in '{0}' mode; rkdeveloptool needs Maskrom (or Loader) mode to flash")]
    UnusableMode(String),
}

impl PlanError {
    pub fn class(&self) -> FlashClass {
        FlashClass::WrongMode
    }
}

/// The steps that write `image` at `sector` from the device's current mode: in Maskrom the
/// loader must run first (`db`), in Loader mode `db` would be refused ("The device does not
/// support this operation!") and is skipped. `rd` at the end boots the new image.
pub fn plan(
    loader: &Path,
    image: &Path,
    sector: u32,
    current_mode: &UsbMode,
) -> Result<Vec<Step>, PlanError> {
    let write = Step::WriteLba {
        sector,
        image: image.to_path_buf(),
    };
    let reset = Step::ResetDevice { subcode: None };
    match current_mode {
        UsbMode::Maskrom => Ok(vec![
            Step::DownloadBoot {
                loader: loader.to_path_buf(),
            },
            write,
            reset,
        ]),
        UsbMode::Loader => Ok(vec![write, reset]),
        UsbMode::Unknown(s) => Err(PlanError::UnusableMode(s.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::testdata;

    macro_rules! transcript {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/transcripts/",
                $name
            ))
        };
    }

    /// One `rkdeveloptool <cmd> <args>` invocation in a transcript and the lines it printed.
    #[derive(Debug)]
    struct Invocation {
        cmd: String,
        args: Vec<String>,
        output: String,
    }

    static CMD_LINE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?:^|[\s/])rkdeveloptool\s+(\S+)((?:\s+\S+)*)\s*$").expect("regex")
    });

    /// Splits a transcript body at its command lines (shell prompts vary between the
    /// sources: `$`, `#`, `sudo`, `./rkdeveloptool/rkdeveloptool`, history numbers).
    fn invocations(body: &str) -> Vec<Invocation> {
        let mut out: Vec<Invocation> = Vec::new();
        for line in body.lines() {
            // `rkdeveloptool -v` prints "rkdeveloptool ver 1.32": output, not a command.
            let command = CMD_LINE.captures(line).filter(|c| &c[1] != "ver");
            if let Some(c) = command {
                out.push(Invocation {
                    cmd: c[1].to_string(),
                    args: c[2].split_whitespace().map(str::to_string).collect(),
                    output: String::new(),
                });
            } else if let Some(last) = out.last_mut() {
                last.output.push_str(line);
                last.output.push('\n');
            }
        }
        out
    }

    fn step_of(inv: &Invocation) -> Step {
        let arg = |i: usize| inv.args.get(i).cloned().unwrap_or_default();
        match inv.cmd.as_str() {
            "ld" => Step::ListDevices,
            "db" => Step::DownloadBoot {
                loader: arg(0).into(),
            },
            "ul" => Step::UpgradeLoader {
                loader: arg(0).into(),
            },
            "wl" => Step::WriteLba {
                sector: arg(0).parse().expect("sector"),
                image: arg(1).into(),
            },
            "ef" => Step::EraseFlash,
            "rd" => Step::ResetDevice {
                subcode: inv.args.first().map(|s| s.parse().expect("subcode")),
            },
            other => panic!("no Step for '{other}'"),
        }
    }

    fn classes(events: &[Event]) -> Vec<FlashClass> {
        events.iter().map(|e| e.message.class()).collect()
    }

    fn maskrom_3588(location_id: u32) -> RockusbDevice {
        RockusbDevice {
            devno: 1,
            vid: 0x2207,
            pid: 0x350b,
            location_id,
            mode: UsbMode::Maskrom,
        }
    }

    // ---- ld -------------------------------------------------------------------------

    #[test]
    fn ld_documented_line() {
        // DOMAIN.md's example, tab-separated as the tool prints it.
        let devs = parse_ld("DevNo=1\tVid=0x2207,Pid=0x350b,LocationID=501\tMaskrom\r\n")
            .expect("one device");
        assert_eq!(devs, [maskrom_3588(0x501)]);
        assert_eq!(devs[0].soc(), Some("rk3588"));
    }

    #[test]
    fn ld_loader_rock5b_tabs() {
        let devs = parse_ld(&testdata::body(transcript!(
            "rkdeveloptool-ld-loader-rock5b.txt"
        )))
        .expect("device");
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].mode, UsbMode::Loader);
        assert_eq!(devs[0].location_id, 0x103);
        assert_eq!(devs[0].soc(), Some("rk3588"));
    }

    #[test]
    fn ld_no_device_transcript() {
        let body = testdata::body(transcript!("rkdeveloptool-ld-no-device.txt"));
        assert_eq!(
            parse_ld(&body),
            Err(LdError::NoDevice {
                line: "not found any devices!".into()
            })
        );
        // The lsusb line of the same log is not mistaken for a device.
        let step = classify_step(&Step::ListDevices, &body, Some(0));
        assert!(matches!(step, Err(RkError::NoDevice { .. })), "{step:?}");
        assert_eq!(class_of(&step), FlashClass::Infrastructure);
    }

    #[test]
    fn ld_forum_copies_with_spaces_and_quote_prefix() {
        // Forum rendering collapsed tabs (rk3308, rk322x), the notes quoted with "> ".
        let rk3308 = testdata::body(transcript!(
            "rkdeveloptool-db-creating-comm-object-failed.txt"
        ));
        let devs = parse_ld(&rk3308).expect("device");
        assert_eq!((devs[0].pid, devs[0].location_id), (0x330e, 0x30a));
        assert_eq!(devs[0].soc(), Some("rk3308"));

        let rock5b = testdata::body(transcript!("rkdeveloptool-db-wl-100-rd-ok-rock5b.txt"));
        assert_eq!(parse_ld(&rock5b).expect("device"), [maskrom_3588(0x303)]);
    }

    #[test]
    fn ld_malformed_and_empty() {
        assert!(matches!(
            parse_ld("DevNo=1\tVid=0x2207\n"),
            Err(LdError::Malformed { .. })
        ));
        assert_eq!(parse_ld(""), Err(LdError::NoOutput));
        assert_eq!(
            parse_ld("DevNo=2\tVid=0x2207,Pid=0x350b,LocationID=107\tMSC\n")
                .map(|d| d[0].mode.clone()),
            Ok(UsbMode::Unknown("MSC".into()))
        );
    }

    #[test]
    fn ld_loader_stays_loader_after_rd3() {
        // rd 3 printed nothing and the device was still in Loader mode: without
        // "Reset Device OK." hil must not call the reset a success.
        let body = testdata::body(transcript!("rkdeveloptool-ld-loader-rd3-rk3588.txt"));
        let inv = invocations(&body);
        let cmds: Vec<&str> = inv.iter().map(|i| i.cmd.as_str()).collect();
        assert_eq!(cmds, ["ld", "rd", "ld"]);
        for i in [0, 2] {
            let r = classify_step(&step_of(&inv[i]), &inv[i].output, Some(0));
            let Ok(StepOk::Devices(d)) = r else {
                panic!("{r:?}")
            };
            assert_eq!(d[0].mode, UsbMode::Loader);
        }
        let rd = classify_step(&step_of(&inv[1]), &inv[1].output, Some(0));
        assert!(
            matches!(rd, Err(RkError::Unrecognised { step: "rd", .. })),
            "{rd:?}"
        );
    }

    #[test]
    fn soc_table_is_limited_to_known_ids() {
        assert_eq!(soc_of(0x2207, 0x350b), Some("rk3588"));
        assert_eq!(soc_of(0x2207, 0x330c), Some("rk3399"));
        assert_eq!(soc_of(0x2207, 0x320b), Some("rk322x"));
        assert_eq!(soc_of(0x2207, 0x300a), Some("rk3066"));
        assert_eq!(soc_of(0x2207, 0x350a), None); // ROCK 3C: SoC not named in its transcript
        assert_eq!(soc_of(0x1234, 0x350b), None);
    }

    // ---- transcripts, step by step ----------------------------------------------------

    #[test]
    fn full_spi_flash_rock5b_succeeds() {
        let body = testdata::body(transcript!("rkdeveloptool-db-wl-100-rd-ok-rock5b.txt"));
        let inv = invocations(&body);
        let got: Vec<StepResult> = inv
            .iter()
            .map(|i| classify_step(&step_of(i), &i.output, Some(0)))
            .collect();
        assert_eq!(
            got,
            [
                Ok(StepOk::Devices(vec![maskrom_3588(0x303)])),
                Ok(StepOk::LoaderDownloaded),
                Ok(StepOk::Written { percent: 100 }),
                Ok(StepOk::Reset),
            ]
        );
    }

    #[test]
    fn write_fails_at_25_percent_rock5b() {
        let body = testdata::body(transcript!(
            "rkdeveloptool-ld-maskrom-db-ok-wl-fail-rock5b.txt"
        ));
        let inv = invocations(&body);
        let cmds: Vec<&str> = inv.iter().map(|i| i.cmd.as_str()).collect();
        assert_eq!(cmds, ["ld", "db", "wl", "ef", "wl"]);
        // The tool exits 1 on failure (main returns -0xFF).
        let exit = |cmd: &str| if cmd == "wl" { Some(1) } else { Some(0) };
        let got: Vec<StepResult> = inv
            .iter()
            .map(|i| classify_step(&step_of(i), &i.output, exit(&i.cmd)))
            .collect();
        let write_failed = Err(RkError::WriteFailed {
            percent: Some(25),
            line: "Write LBA failed!".into(),
        });
        assert_eq!(got[1], Ok(StepOk::LoaderDownloaded));
        assert_eq!(got[2], write_failed);
        assert_eq!(got[3], Ok(StepOk::Erased));
        assert_eq!(got[4], write_failed);
        assert_eq!(class_of(&got[2]), FlashClass::Infrastructure);
        assert_eq!(last_write_progress(&inv[2].output), Some(25));
    }

    #[test]
    fn comm_object_failure_is_infrastructure() {
        let body = testdata::body(transcript!(
            "rkdeveloptool-db-creating-comm-object-failed.txt"
        ));
        let inv = invocations(&body);
        let db = classify_step(&step_of(&inv[1]), &inv[1].output, Some(1));
        assert_eq!(
            db,
            Err(RkError::Comm {
                line: "Creating Comm Object failed!".into()
            })
        );
        assert_eq!(class_of(&db), FlashClass::Infrastructure);
    }

    #[test]
    fn db_in_loader_mode_is_wrong_mode_naming_maskrom() {
        let body = testdata::body(transcript!(
            "rkdeveloptool-db-unsupported-in-loader-mode.txt"
        ));
        let inv = invocations(&body);
        let ld = classify_step(&step_of(&inv[0]), &inv[0].output, Some(0));
        let Ok(StepOk::Devices(devs)) = ld else {
            panic!("{ld:?}")
        };
        assert_eq!(
            (devs[0].mode.clone(), devs[0].soc()),
            (UsbMode::Loader, Some("rk3066"))
        );

        let db = classify_step(&step_of(&inv[1]), &inv[1].output, Some(1));
        let Err(err) = &db else { panic!("{db:?}") };
        assert_eq!(err.class(), FlashClass::WrongMode);
        assert!(
            matches!(
                err,
                RkError::WrongMode {
                    step: "db",
                    needed: ModeNeed::Maskrom,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("Maskrom mode"), "{err}");
    }

    #[test]
    fn db_ul_then_info_commands_rk322x() {
        let body = testdata::body(transcript!("rkdeveloptool-db-ul-rfi-rci-rcb-rk322x.txt"));
        let inv = invocations(&body);
        let cmds: Vec<&str> = inv.iter().map(|i| i.cmd.as_str()).collect();
        assert_eq!(cmds, ["ld", "db", "ul", "rfi", "rci", "rcb"]);
        assert_eq!(
            classify_step(&step_of(&inv[1]), &inv[1].output, Some(0)),
            Ok(StepOk::LoaderDownloaded)
        );
        assert_eq!(
            classify_step(&step_of(&inv[2]), &inv[2].output, Some(0)),
            Ok(StepOk::LoaderUpgraded)
        );
        // The info dumps (flash info, chip info, capability) contain no known message.
        for i in &inv[3..] {
            assert_eq!(scan(&i.output), [], "{}", i.cmd);
        }
        let devs = parse_ld(&inv[0].output).expect("device");
        assert_eq!(devs[0].soc(), Some("rk322x"));
    }

    #[test]
    fn maskrom_without_loader_rock5a() {
        let body = testdata::body(transcript!(
            "rkdeveloptool-maskrom-commands-fail-rock5a.txt"
        ));
        let inv = invocations(&body);
        let by_cmd = |cmd: &str| -> Vec<Message> {
            inv.iter()
                .filter(|i| i.cmd == cmd)
                .flat_map(|i| scan(&i.output))
                .map(|e| e.message)
                .collect()
        };
        assert_eq!(
            by_cmd("rfi"),
            [Message::CommandFailed, Message::CommandFailed]
        );
        assert_eq!(by_cmd("ppt"), [Message::CommandFailed; 3]);
        assert_eq!(by_cmd("ef"), [Message::CommandFailed]);
        assert_eq!(by_cmd("rcb"), [Message::CommandFailed]);
        let Some(db) = inv.iter().find(|i| i.cmd == "db") else {
            panic!("no db")
        };
        let r = classify_step(&step_of(db), &db.output, Some(1));
        assert_eq!(
            r,
            Err(RkError::BadLoader {
                file: "foo".into(),
                line: "Opening loader failed, exiting download boot!".into()
            })
        );
        assert_eq!(class_of(&r), FlashClass::Configuration);
        assert!(r
            .expect_err("bad loader")
            .to_string()
            .contains("loader file foo"));
    }

    #[test]
    fn ef_without_loader_fails_rock5a() {
        let body = testdata::body(transcript!(
            "rkdeveloptool-maskrom-commands-fail-rock5a.txt"
        ));
        let inv = invocations(&body);
        let Some(ef) = inv.iter().find(|i| i.cmd == "ef") else {
            panic!("no ef")
        };
        let r = classify_step(&Step::EraseFlash, &ef.output, Some(1));
        assert_eq!(
            r,
            Err(RkError::CommandFailed {
                step: "ef",
                line: "Getting flash info from device failed!".into()
            })
        );
    }

    #[test]
    fn maskrom_without_loader_rk3399() {
        let body = testdata::body(transcript!("rkdeveloptool-maskrom-rd-td-fail-rk3399.txt"));
        let inv = invocations(&body);
        let cmds: Vec<&str> = inv.iter().map(|i| i.cmd.as_str()).collect();
        assert_eq!(
            cmds,
            ["ld", "ppt", "ef", "td", "rd", "rid", "rfi", "rci", "rcb", "ld"]
        );
        for i in &inv[1..9] {
            let ev = scan(&i.output);
            assert!(!ev.is_empty(), "{}: no message", i.cmd);
            assert!(
                classes(&ev)
                    .iter()
                    .all(|c| *c == FlashClass::Infrastructure),
                "{}: {ev:?}",
                i.cmd
            );
        }
        let rd = classify_step(&step_of(&inv[4]), &inv[4].output, Some(1));
        assert_eq!(
            rd,
            Err(RkError::CommandFailed {
                step: "rd",
                line: "Reset Device failed!".into()
            })
        );
        let ld = parse_ld(&inv[9].output).expect("device");
        assert_eq!((ld[0].soc(), ld[0].location_id), (Some("rk3399"), 0x101));
    }

    #[test]
    fn rd_failure_with_usb_log_rock3c() {
        let body = testdata::body(transcript!("rkdeveloptool-rd-fail-libusb-log-rock3c.txt"));
        let inv = invocations(&body);
        let cmds: Vec<&str> = inv.iter().map(|i| i.cmd.as_str()).collect();
        assert_eq!(cmds, ["-v", "ld", "ppt", "rd"]);
        let ld = parse_ld(&inv[1].output).expect("device");
        assert_eq!((ld[0].pid, ld[0].soc()), (0x350a, None));

        let rd = &inv[3];
        let messages: Vec<Message> = scan(&rd.output).into_iter().map(|e| e.message).collect();
        assert_eq!(messages[0], Message::CommandFailed);
        assert_eq!(messages[1..], [Message::UsbLogError; 6]);
        assert_eq!(
            classify_step(&step_of(rd), &rd.output, Some(1)),
            Err(RkError::CommandFailed {
                step: "rd",
                line: "Reset Device failed!".into()
            })
        );
    }

    // ---- documented messages not in a transcript (constructed inputs) ------------------

    #[test]
    fn documented_lab_faults_without_a_transcript() {
        // DOMAIN.md lists these; no recorded transcript shows them. The tool prints them in
        // colour (ESC[30;41m ... ESC[0m, main.cpp), so the inputs carry the escapes.
        let red = |s: &str| format!("\x1b[30;41m{s}\x1b[0m\r\n");
        let wl = Step::WriteLba {
            sector: 0,
            image: "spi.img".into(),
        };
        assert_eq!(
            classify_step(
                &wl,
                &red("Did not find any rockusb device, please plug device in!"),
                Some(1)
            ),
            Err(RkError::NoDevice {
                line: "Did not find any rockusb device, please plug device in!".into()
            })
        );
        let many = classify_step(
            &wl,
            &red("Found too many rockusb devices, please plug devices out!"),
            Some(1),
        );
        assert!(
            matches!(many, Err(RkError::TooManyDevices { .. })),
            "{many:?}"
        );
        assert_eq!(class_of(&many), FlashClass::Infrastructure);
    }

    #[test]
    fn documented_upgrade_loader_success_and_bad_loader() {
        // ul's failure text differs from db's ("exiting upgrade loader!", main.cpp).
        let ul = Step::UpgradeLoader {
            loader: "rk3588_spl_loader_v1.15.113.bin".into(),
        };
        let r = classify_step(
            &ul,
            "\x1b[30;41mOpening loader failed, exiting upgrade loader!\x1b[0m\r\n",
            Some(1),
        );
        assert!(
            matches!(&r, Err(RkError::BadLoader { file, .. }) if file.ends_with("rk3588_spl_loader_v1.15.113.bin")),
            "{r:?}"
        );
    }

    #[test]
    fn progress_with_cr_and_with_ansi_redraw() {
        // The brief's form: updates separated by bare CRs.
        let cr =
            "Write LBA from file (10%)\rWrite LBA from file (55%)\rWrite LBA from file (100%)\r\n";
        assert_eq!(last_write_progress(cr), Some(100));
        // main.cpp's form: first line, then ESC[1A ESC[2K before every redraw.
        let ansi = "Write LBA from file (3%)\r\n\x1b[1A\x1b[2KWrite LBA from file (64%)\r\n";
        assert_eq!(last_write_progress(ansi), Some(64));
        assert_eq!(
            last_write_progress("Downloading bootloader succeeded."),
            None
        );

        let wl = Step::WriteLba {
            sector: 0x4000,
            image: "rootfs.img".into(),
        };
        assert_eq!(
            classify_step(&wl, cr, Some(0)),
            Ok(StepOk::Written { percent: 100 })
        );
        // Progress that stops short with exit 0 is not a success.
        assert!(matches!(
            classify_step(&wl, ansi, Some(0)),
            Err(RkError::Unrecognised { step: "wl", .. })
        ));
        // Failure on the same line as the last redraw (CR-separated stream).
        let r = classify_step(
            &wl,
            "Write LBA from file (40%)\rWrite LBA failed!\r\n",
            Some(1),
        );
        assert_eq!(
            r,
            Err(RkError::WriteFailed {
                percent: Some(40),
                line: "Write LBA failed!".into()
            })
        );
    }

    #[test]
    fn read_and_open_failures_from_the_source() {
        // Not in a transcript or DOMAIN.md's list; texts from main.cpp.
        let wl = Step::WriteLba {
            sector: 0,
            image: "missing.img".into(),
        };
        let r = classify_step(
            &wl,
            "Write LBA failed, err=2, can't open file: missing.img\r\n",
            Some(1),
        );
        assert!(matches!(&r, Err(RkError::BadImage { file, .. }) if file.ends_with("missing.img")));
        assert_eq!(class_of(&r), FlashClass::Configuration);
        assert_eq!(scan("Read LBA failed!\r\n")[0].message, Message::ReadFailed);
        assert_eq!(
            scan("Reset Device quit, creating comm object failed!\r\n")[0].message,
            Message::CommObjectFailed
        );
        assert_eq!(
            scan("Parameter of [WL] command is invalid, please check help!\r\n")
                .iter()
                .map(|e| e.message)
                .collect::<Vec<_>>(),
            [Message::BadArguments]
        );
    }

    #[test]
    fn every_documented_message_has_a_class() {
        // DOMAIN.md, "rkdeveloptool": each message and the class the brief asks for.
        let expected = [
            ("not found any devices!", FlashClass::Infrastructure),
            ("Downloading bootloader succeeded.", FlashClass::Ok),
            ("Write LBA from file (7%)", FlashClass::Ok),
            ("Write LBA failed!", FlashClass::Infrastructure),
            ("Reset Device OK.", FlashClass::Ok),
            ("Upgrading loader succeeded.", FlashClass::Ok),
            (
                "The device does not support this operation!",
                FlashClass::WrongMode,
            ),
            (
                "Did not find any rockusb device, please plug device in!",
                FlashClass::Infrastructure,
            ),
            (
                "Found too many rockusb devices, please plug devices out!",
                FlashClass::Infrastructure,
            ),
            ("Creating Comm Object failed!", FlashClass::Infrastructure),
            (
                "Opening loader failed, exiting download boot!",
                FlashClass::Configuration,
            ),
        ];
        for (text, class) in expected {
            let events = scan(text);
            assert_eq!(events.len(), 1, "{text}: {events:?}");
            assert_eq!(events[0].message.class(), class, "{text}");
            assert_eq!(events[0].line, text);
        }
    }

    #[test]
    fn no_message_means_unrecognised_even_on_exit_zero() {
        let rd = Step::ResetDevice { subcode: None };
        let r = classify_step(&rd, "", Some(0));
        assert!(matches!(
            r,
            Err(RkError::Unrecognised {
                exit_status: Some(0),
                ..
            })
        ));
        let r = classify_step(&rd, "Reset Device OK.\r\n", Some(1));
        assert!(matches!(
            r,
            Err(RkError::Unrecognised {
                exit_status: Some(1),
                ..
            })
        ));
        assert_eq!(
            classify_step(&rd, "Reset Device OK.\r\n", None),
            Ok(StepOk::Reset)
        );
    }

    // ---- plan ---------------------------------------------------------------------------

    #[test]
    fn plan_in_maskrom_downloads_the_loader_first() {
        let steps = plan(
            Path::new("loader.bin"),
            Path::new("spi.img"),
            0,
            &UsbMode::Maskrom,
        )
        .expect("plan");
        let args: Vec<Vec<OsString>> = steps.iter().map(Step::args).collect();
        assert_eq!(
            args,
            [
                vec![OsString::from("db"), "loader.bin".into()],
                vec!["wl".into(), "0".into(), "spi.img".into()],
                vec!["rd".into()],
            ]
        );
    }

    #[test]
    fn plan_in_loader_mode_skips_db() {
        let steps = plan(
            Path::new("loader.bin"),
            Path::new("rootfs.img"),
            0x8000,
            &UsbMode::Loader,
        )
        .expect("plan");
        assert_eq!(
            steps,
            [
                Step::WriteLba {
                    sector: 0x8000,
                    image: "rootfs.img".into()
                },
                Step::ResetDevice { subcode: None },
            ]
        );
        assert!(steps.iter().all(|s| s.needs() != ModeNeed::Maskrom));
    }

    #[test]
    fn plan_refuses_unknown_mode() {
        let r = plan(
            Path::new("l"),
            Path::new("i"),
            0,
            &UsbMode::Unknown("Unknown".into()),
        );
        assert_eq!(r, Err(PlanError::UnusableMode("Unknown".into())));
        assert_eq!(
            PlanError::UnusableMode(String::new()).class(),
            FlashClass::WrongMode
        );
    }

    #[test]
    fn step_args_cover_every_step() {
        assert_eq!(Step::ListDevices.args(), [OsString::from("ld")]);
        assert_eq!(Step::EraseFlash.args(), [OsString::from("ef")]);
        assert_eq!(
            Step::ResetDevice { subcode: Some(3) }.args(),
            [OsString::from("rd"), "3".into()]
        );
        assert_eq!(
            Step::UpgradeLoader {
                loader: "l.bin".into()
            }
            .args(),
            [OsString::from("ul"), "l.bin".into()]
        );
    }
}
