//! Renesas R-Car Gen3 Flash Writer over SCIF (115200 8N1): the prompt-driven dialogue.
//!
//! Owns what the writer's console text means: which prompt is waiting for an answer
//! ([`detect_prompt`]), what to answer for a given write ([`Xls2Plan`], [`Xls3Plan`],
//! [`EmmcWritePlan`], [`LoadWriterPlan`] driven by a [`Dialogue`]), whether the command
//! succeeded or which error it printed ([`classify`]), and how fast a file may be sent
//! ([`paced_chunks`]). The console itself belongs to the console broker; the caller feeds
//! text in and sends the replies out.
//!
//! Facts taken from the writer's sources (renesas-rcar/flash_writer) that shape this code:
//! - the dialogue is fixed per command but the number of DIP-switch confirmations
//!   (`... Setting OK? (Push Y key)`) depends on the board build, and `Clear OK?(y/n)` is
//!   only asked when the target range is not already erased;
//! - an answered DIP-switch prompt is erased with backspaces (`DelStr`) and the next one
//!   printed on the same line, so prompts are detected on the rendered screen;
//! - line prompts (`GetStr`) end on CR and echo; key prompts (`WaitKeyIn_Y`,
//!   `WaitKeyIn_YorN`) read one byte and do not echo;
//! - a SCIF receive overrun prints `ORER` and the lost byte is gone: S-record loading has no
//!   checksum verification, so an overrun means a possibly corrupt image.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use super::{screen_lines, FlashClass};

// ---- prompts ------------------------------------------------------------------------------

/// A question the writer (or the boot ROM in SCIF download mode) is waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// `please send !` (boot ROM, load the writer's `.mot`) or
    /// `please send ! ('.' & CR stop load)` (XLS2/EM_W image): send S-records.
    SendSrecord,
    /// `please send ! (binary)` (XLS3) or `please send binary file!` (EM_WB).
    SendBinary,
    /// `Select (1-3)>`: which serial flash.
    SelectDevice,
    /// `Select area(0-2)>`: which eMMC partition.
    SelectArea,
    /// `<switch instruction> Setting OK? (Push Y key)`: confirm a DIP-switch setting.
    SettingOk,
    /// `Please Input : H'`: a hexadecimal address or size (XLS2/XLS3).
    InputAddress,
    /// `Please Input Start Address in sector :` (EM_W/EM_WB).
    InputSector,
    /// `Please Input Program Start Address :` (EM_W).
    InputProgramStart,
    /// `Please Input File size(byte) :` (EM_WB).
    InputFileSize,
    /// `Clear OK?(y/n)`: erase the target range first.
    ClearOk,
    /// `>` alone on a line, after the banner or after a command finished.
    CommandPrompt,
}

struct PromptPattern {
    re: Regex,
    prompt: Prompt,
    /// Printed with CRLF: only a complete line is the prompt, which keeps a partial read of
    /// `please send ! (binary)` from being taken for `please send !`.
    line_ends: bool,
}

static PROMPTS: LazyLock<Vec<PromptPattern>> = LazyLock::new(|| {
    let p = |re: &str, prompt: Prompt, line_ends: bool| PromptPattern {
        re: Regex::new(re).expect("static regex"),
        prompt,
        line_ends,
    };
    vec![
        // Kriek boards add " [In the case of Kriek Board]" after the key hint.
        p(
            r"Setting OK\? \(Push Y key\)(?:\s*\[[^\]]*\])?$",
            Prompt::SettingOk,
            false,
        ),
        p(r"Clear OK\?\s*\(y/n\)$", Prompt::ClearOk, false),
        p(r"Select \(1-3\)>$", Prompt::SelectDevice, false),
        p(r"Select area\(\d-\d\)>$", Prompt::SelectArea, false),
        p(r"Please Input : H'$", Prompt::InputAddress, false),
        p(
            r"Please Input Start Address in sector :$",
            Prompt::InputSector,
            false,
        ),
        p(
            r"Please Input Program Start Address :$",
            Prompt::InputProgramStart,
            false,
        ),
        p(
            r"Please Input File size\(byte\) :$",
            Prompt::InputFileSize,
            false,
        ),
        p(
            r"please send ! \(binary\)$|please send binary file!$",
            Prompt::SendBinary,
            true,
        ),
        p(
            r"please send !(?: \('\.' & CR stop load\))?$",
            Prompt::SendSrecord,
            true,
        ),
        p(r"^>$", Prompt::CommandPrompt, false),
    ]
});

/// The prompt the writer is waiting on, judged from the tail of its console output (ANSI
/// escapes, CR/LF mixes and backspace erasures tolerated). `None` while the last thing on
/// screen is not a prompt, e.g. the echo of an answer or a message still being printed.
pub fn detect_prompt(tail: &str) -> Option<Prompt> {
    let lines = screen_lines(tail);
    let (index, line) = lines
        .iter()
        .enumerate()
        .rev()
        .map(|(i, l)| (i, strip_overrun(l).trim()))
        .find(|(_, l)| !l.is_empty())?;
    let line_ended = index + 1 < lines.len();
    PROMPTS
        .iter()
        .find(|p| p.re.is_match(line) && (line_ended || !p.line_ends))
        .map(|p| p.prompt)
}

/// `ORER` is printed from inside the writer's read loop, so it can land right after a
/// prompt that is still waiting (h3ulcb transcript): it does not answer the prompt.
fn strip_overrun(line: &str) -> &str {
    let mut l = line.trim_end();
    while let Some(rest) = l.strip_suffix("ORER") {
        l = rest.trim_end();
    }
    l
}

static DIP_INSTRUCTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([^\n\x08]*?)\s*Setting OK\? \(Push Y key\)").expect("static regex")
});

/// The DIP-switch instructions the writer asked to confirm (`SW1 SW2 All OFF!`, ...), in
/// order, for the operator message when the flash ID check then fails. Read from the raw
/// stream because the screen rendering has already erased the answered ones.
pub fn dip_instructions(output: &str) -> Vec<String> {
    let text = crate::text::clean(output.replace('\r', "\n").as_bytes());
    DIP_INSTRUCTION
        .captures_iter(&text)
        .filter_map(|c| c.get(1))
        .map(|m| m.as_str().split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

// ---- outcomes -------------------------------------------------------------------------------

/// Which program printed a banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterKind {
    /// `Flash writer for R-Car <SoCs> Series V1.xx <date>`
    FlashWriter,
    /// `R-Car Gen3 MiniMonitor V5.xx <date>`: the writer's predecessor, same XLS2 dialogue.
    MiniMonitor,
}

/// The banner the writer prints once its `.mot` was loaded and started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterBanner {
    pub kind: WriterKind,
    /// `V1.06`
    pub version: String,
    /// The whole banner line.
    pub line: String,
}

static FLASH_WRITER_BANNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Flash writer for R-Car \S+ Series (V\d+\.\d+)").expect("static regex")
});
static MINIMONITOR_BANNER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"R-Car Gen3 MiniMonitor (V\d+\.\d+)").expect("static regex"));

/// The last complete banner line in `output` (a line still being received could cut the
/// version short).
pub fn parse_banner(output: &str) -> Option<WriterBanner> {
    let lines = screen_lines(output);
    let complete = lines.len().saturating_sub(1);
    lines[..complete]
        .iter()
        .rev()
        .find_map(|l| banner_in(l.trim()))
}

fn banner_in(line: &str) -> Option<WriterBanner> {
    let (kind, re) = if line.contains("Flash writer for R-Car") {
        (WriterKind::FlashWriter, &*FLASH_WRITER_BANNER)
    } else {
        (WriterKind::MiniMonitor, &*MINIMONITOR_BANNER)
    };
    let version = re.captures(line)?.get(1)?.as_str().to_string();
    Some(WriterBanner {
        kind,
        version,
        line: line.to_string(),
    })
}

/// The boot ROM's SCIF download banner: the board waits for the writer's `.mot`.
pub fn in_scif_download_mode(output: &str) -> bool {
    output.contains("SCIF Download mode")
}

/// An error the writer printed. Each carries the line it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (writer printed '{line}')")]
pub struct FwError {
    pub kind: FwErrorKind,
    pub line: String,
}

impl FwError {
    pub fn class(&self) -> FlashClass {
        self.kind.class()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FwErrorKind {
    /// `Syntax Error`: an answer was not hexadecimal or too long.
    #[error("the writer rejected an answer as malformed: check the addresses in the board file")]
    Syntax,
    /// `Param Error` (also the writer's misspelt `Palam Error`): out of range.
    #[error("the writer rejected an answer as out of range: check the partition/sector in the board file")]
    Param,
    /// ` DEVICE ID Error. Please check switch setting `
    #[error("the flash did not answer with the expected ID{}: check the board's DIP switches for the selected flash", .read_id.as_ref().map(|id| format!(" (read 0x{id})")).unwrap_or_default())]
    DeviceId { read_id: Option<String> },
    /// `eMMC Init ERROR!`
    #[error(
        "the eMMC did not initialise: check that the eMMC is fitted and the DIP switches select it"
    )]
    EmmcInit,
    /// `ORER`
    #[error("SCIF receive overrun: bytes from the host were lost and the image may be corrupt; send slower or check the serial adapter")]
    Overrun,
    /// `Memory Boundary Error`
    #[error(
        "an address is not aligned as the writer requires: check the addresses in the board file"
    )]
    MemoryBoundary,
    /// `Address Input Error`
    #[error("the flash save address is beyond the selected flash: check the board file")]
    AddressRange,
    /// `Program over size Error`
    #[error("the image does not fit between the save address and the end of the flash")]
    ProgramOverSize,
    /// `command not found`
    #[error("this writer build does not have the command (built without SERIAL_FLASH or EMMC?)")]
    CommandNotFound,
    /// `ERROR Load file. <Download file DRAM(...), SecureRAM(...) ONLY >`
    #[error("the program start address is outside the ranges the writer can load to")]
    LoadAddress,
    /// `EM_W mot file read ERR`
    #[error("the S-record transfer was aborted or rejected")]
    SrecordLoad,
    /// `Partition Size Over`
    #[error("the write does not fit in the selected eMMC partition")]
    PartitionSizeOver,
    /// `EM_W ERR` / `EM_WB ERR` / `EM_E ERR`
    #[error("the eMMC write or erase failed")]
    EmmcWrite,
    /// `EM_W Partition select FAIL`
    #[error("the eMMC partition could not be selected")]
    PartitionSelect,
    /// `S-record checksum error: ...` (also `format`, `sequence`): a writer that verifies
    /// uploads refused a record. The released writer stores records unchecked; the lab's
    /// simulated board (fixtures/rcar-bootrom-sim) and verifying builds print this.
    #[error("the writer refused an S-record of the upload")]
    SrecordRejected,
}

impl FwErrorKind {
    pub fn class(&self) -> FlashClass {
        use FwErrorKind::*;
        match self {
            DeviceId { .. } | EmmcInit | Overrun | EmmcWrite | PartitionSelect => {
                FlashClass::Infrastructure
            }
            // A refused record is the file's fault unless the file is intact; the backend,
            // which has the file, tells the two apart.
            Syntax | Param | MemoryBoundary | AddressRange | ProgramOverSize | CommandNotFound
            | LoadAddress | SrecordLoad | PartitionSizeOver | SrecordRejected => {
                FlashClass::Configuration
            }
        }
    }
}

/// What a stretch of writer output amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwOutcome {
    /// The writer started and printed its banner.
    WriterReady(WriterBanner),
    /// `SAVE SPI-FLASH....... complete!` (XLS2/XLS3)
    SpiFlashSaved,
    /// ` ERASE HYPER-FLASH (96sec[typ]).... complete!` (XCS) or `EM_E Complete!`
    FlashErased,
    /// `EM_W Complete!` / `EM_WB Complete!`
    EmmcWritten,
    Error(FwError),
}

impl FwOutcome {
    pub fn class(&self) -> FlashClass {
        match self {
            FwOutcome::Error(e) => e.class(),
            _ => FlashClass::Ok,
        }
    }
}

/// Error texts: DOMAIN.md's four, `ORER` (transcripts) and the rest from the writer's
/// sources (dgmodul4.c, dg_emmc_access.c, main.c), none of which a transcript shows.
static ERRORS: LazyLock<Vec<(Regex, FwErrorKind)>> = LazyLock::new(|| {
    let e = |re: &str, kind: FwErrorKind| (Regex::new(re).expect("static regex"), kind);
    vec![
        e(r"Syntax Error", FwErrorKind::Syntax),
        e(r"Pa[rl]am Error", FwErrorKind::Param),
        e(r"DEVICE ID Error", FwErrorKind::DeviceId { read_id: None }),
        e(r"eMMC Init ERROR!", FwErrorKind::EmmcInit),
        e(r"ORER$", FwErrorKind::Overrun),
        e(r"Memory Boundary Error", FwErrorKind::MemoryBoundary),
        e(r"Address Input Error", FwErrorKind::AddressRange),
        e(r"(?i)Program over size Error", FwErrorKind::ProgramOverSize),
        e(r"^command not found$", FwErrorKind::CommandNotFound),
        e(r"ERROR Load file\.", FwErrorKind::LoadAddress),
        e(r"EM_WB? mot file read ERR", FwErrorKind::SrecordLoad),
        e(r"Partition Size Over", FwErrorKind::PartitionSizeOver),
        e(r"EM_(?:WB?|E) ERR$", FwErrorKind::EmmcWrite),
        e(
            r"EM_(?:WB?|E) Partition select FAIL",
            FwErrorKind::PartitionSelect,
        ),
        e(
            r"^S-record (?:checksum|format|sequence) error",
            FwErrorKind::SrecordRejected,
        ),
    ]
});

static READ_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"READ ID = 0x([0-9A-Fa-f]+)").expect("static regex"));
static FLASH_ERASED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"ERASE [A-Z-]*FLASH\b.*complete!|EM_E Complete!").expect("static regex")
});
static EMMC_WRITTEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"EM_WB? Complete!").expect("static regex"));

/// What `output` (one command's worth of console text) says: the first error if any (it is
/// the cause; an `ORER` before a later `complete!` still means lost bytes), else the last
/// completion, else a banner. `None` while nothing conclusive has been printed.
pub fn classify(output: &str) -> Option<FwOutcome> {
    let lines: Vec<String> = screen_lines(output)
        .into_iter()
        .map(|l| l.trim().to_string())
        .collect();
    if let Some(err) = first_error(&lines) {
        return Some(FwOutcome::Error(err));
    }
    last_completion(&lines).or_else(|| parse_banner(output).map(FwOutcome::WriterReady))
}

fn first_error(lines: &[String]) -> Option<FwError> {
    lines.iter().enumerate().find_map(|(i, line)| {
        let (_, kind) = ERRORS.iter().find(|(re, _)| re.is_match(line))?;
        let kind = match kind.clone() {
            // The ID the flash did answer is on the next line.
            FwErrorKind::DeviceId { .. } => FwErrorKind::DeviceId {
                read_id: lines[i + 1..]
                    .iter()
                    .take(2)
                    .find_map(|l| Some(READ_ID.captures(l)?.get(1)?.as_str().to_string())),
            },
            other => other,
        };
        Some(FwError {
            kind,
            line: line.clone(),
        })
    })
}

fn last_completion(lines: &[String]) -> Option<FwOutcome> {
    let mut last = None;
    // With the QSPI board (flash 2) the save prints "SAVE SPI-FLASH......." and then one
    // "SpiArea : ... complete!" line per area, so "complete!" may come lines later (the
    // first one ends the dialogue; the next command waits for `>` anyway).
    let mut saving = false;
    for line in lines {
        saving |= line.contains("SAVE SPI-FLASH");
        if saving && line.contains("complete!") {
            last = Some(FwOutcome::SpiFlashSaved);
            saving = false;
        } else if EMMC_WRITTEN.is_match(line) {
            last = Some(FwOutcome::EmmcWritten);
        } else if FLASH_ERASED.is_match(line) {
            last = Some(FwOutcome::FlashErased);
        }
    }
    last
}

// ---- dialogues -------------------------------------------------------------------------------

/// What to send when a prompt appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Typed at a line prompt and ended with CR (the writer's `GetStr` stops at CR and
    /// ignores LF).
    Line(String),
    /// A single key for a key prompt. No CR: it would be read as an empty answer by the
    /// next line prompt, which aborts EM_W and re-prompts in XLS2.
    Key(char),
    /// The file's S-records, as text, paced with [`paced_chunks`].
    SendSrecord(PathBuf),
    /// The file's bytes, raw, paced with [`paced_chunks`].
    SendBinary(PathBuf),
}

impl Reply {
    /// The bytes to type for `Line`/`Key`; `None` for file transfers.
    pub fn typed_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Reply::Line(s) => Some(format!("{s}\r").into_bytes()),
            Reply::Key(c) => Some(c.to_string().into_bytes()),
            Reply::SendSrecord(_) | Reply::SendBinary(_) => None,
        }
    }
}

/// How often a prompt occurs in a command's dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurs {
    Once,
    /// `Clear OK?(y/n)`: only when the range is not erased yet.
    Optional,
    /// DIP-switch confirmations: their number depends on the board build.
    AnyNumber,
}

/// One expected prompt and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub expect: Prompt,
    pub reply: Reply,
    pub occurs: Occurs,
}

impl Exchange {
    fn once(expect: Prompt, reply: Reply) -> Self {
        Exchange {
            expect,
            reply,
            occurs: Occurs::Once,
        }
    }

    fn dip_switches() -> Self {
        Exchange {
            expect: Prompt::SettingOk,
            reply: Reply::Key('y'),
            occurs: Occurs::AnyNumber,
        }
    }

    fn clear_ok() -> Self {
        Exchange {
            expect: Prompt::ClearOk,
            reply: Reply::Key('y'),
            occurs: Occurs::Optional,
        }
    }
}

/// The completion that ends a dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    WriterReady,
    SpiFlashSaved,
    FlashErased,
    EmmcWritten,
}

impl Finish {
    fn reached_by(self, outcome: &FwOutcome) -> bool {
        matches!(
            (self, outcome),
            (Finish::WriterReady, FwOutcome::WriterReady(_))
                | (Finish::SpiFlashSaved, FwOutcome::SpiFlashSaved)
                | (Finish::FlashErased, FwOutcome::FlashErased)
                | (Finish::EmmcWritten, FwOutcome::EmmcWritten)
        )
    }
}

/// Which serial flash XLS2/XLS3 write (the writer's `Select (1-3)>` menu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpiFlash {
    /// `1 : QspiFlash (U5 : S25FS128S)`
    OnBoardQspi = 1,
    /// `2 : QspiFlash Board (CN3: S25FL512S)`
    QspiBoard = 2,
    /// `3 : HyperFlash (SiP internal)`
    HyperFlash = 3,
}

impl SpiFlash {
    fn menu_choice(self) -> String {
        (self as u8).to_string()
    }
}

/// `XLS2`: write an S-record image to serial flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xls2Plan {
    /// `Program Top Address`: where the S-records' lowest address is meant to run.
    pub image_addr: u32,
    /// `Qspi/HyperFlash Save Address`: offset in the flash.
    pub flash_addr: u32,
    pub srec: PathBuf,
    pub flash: SpiFlash,
}

impl Xls2Plan {
    /// The plan for the Salvator-X/XS default, HyperFlash in the SiP.
    pub fn hyperflash(image_addr: u32, flash_addr: u32, srec: impl Into<PathBuf>) -> Self {
        Xls2Plan {
            image_addr,
            flash_addr,
            srec: srec.into(),
            flash: SpiFlash::HyperFlash,
        }
    }

    /// The (prompt, reply) sequence, in the order the writer asks (XLS2 transcripts and
    /// dgmodul4.c `XLoadSpiflash0_2`).
    pub fn exchanges(&self) -> Vec<Exchange> {
        spi_write(
            "XLS2",
            self.flash,
            self.image_addr,
            self.flash_addr,
            Exchange::once(Prompt::SendSrecord, Reply::SendSrecord(self.srec.clone())),
        )
    }

    pub fn dialogue(&self) -> Dialogue {
        Dialogue::new(self.exchanges(), Finish::SpiFlashSaved)
    }
}

/// `XLS3`: write a raw binary to serial flash; the writer asks for the size instead of the
/// program address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xls3Plan {
    /// The file's size in bytes.
    pub size: u32,
    pub flash_addr: u32,
    pub bin: PathBuf,
    pub flash: SpiFlash,
}

impl Xls3Plan {
    pub fn exchanges(&self) -> Vec<Exchange> {
        spi_write(
            "XLS3",
            self.flash,
            self.size,
            self.flash_addr,
            Exchange::once(Prompt::SendBinary, Reply::SendBinary(self.bin.clone())),
        )
    }

    pub fn dialogue(&self) -> Dialogue {
        Dialogue::new(self.exchanges(), Finish::SpiFlashSaved)
    }
}

/// XLS2 and XLS3 differ only in the command, the meaning of the first number and the send.
fn spi_write(
    command: &str,
    flash: SpiFlash,
    first: u32,
    flash_addr: u32,
    send: Exchange,
) -> Vec<Exchange> {
    vec![
        Exchange::once(Prompt::CommandPrompt, Reply::Line(command.to_string())),
        Exchange::once(Prompt::SelectDevice, Reply::Line(flash.menu_choice())),
        Exchange::dip_switches(),
        Exchange::once(Prompt::InputAddress, Reply::Line(hex(first))),
        Exchange::once(Prompt::InputAddress, Reply::Line(hex(flash_addr))),
        send,
        Exchange::clear_ok(),
    ]
}

/// An eMMC hardware partition (the writer's `Select area(0-2)>` menu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmmcPartition {
    User = 0,
    Boot1 = 1,
    Boot2 = 2,
}

/// `EM_W`: write an S-record image to eMMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmmcWritePlan {
    pub partition: EmmcPartition,
    /// First 512-byte sector of the partition to write.
    pub start_sector: u32,
    /// `Program Start Address` of the S-records (the writer wants it 512-byte aligned).
    pub program_addr: u32,
    pub srec: PathBuf,
}

impl EmmcWritePlan {
    /// The (prompt, reply) sequence (application note 3.4.8, dg_emmc_access.c
    /// `dg_emmc_write`): DIP-switch checks come before the partition menu.
    pub fn exchanges(&self) -> Vec<Exchange> {
        vec![
            Exchange::once(Prompt::CommandPrompt, Reply::Line("EM_W".into())),
            Exchange::dip_switches(),
            Exchange::once(
                Prompt::SelectArea,
                Reply::Line((self.partition as u8).to_string()),
            ),
            Exchange::once(Prompt::InputSector, Reply::Line(hex(self.start_sector))),
            Exchange::once(
                Prompt::InputProgramStart,
                Reply::Line(hex(self.program_addr)),
            ),
            Exchange::once(Prompt::SendSrecord, Reply::SendSrecord(self.srec.clone())),
        ]
    }

    pub fn dialogue(&self) -> Dialogue {
        Dialogue::new(self.exchanges(), Finish::EmmcWritten)
    }
}

/// Loading the writer itself in SCIF download mode: the boot ROM asks `please send !` and
/// the writer's banner answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWriterPlan {
    pub mot: PathBuf,
}

impl LoadWriterPlan {
    pub fn exchanges(&self) -> Vec<Exchange> {
        vec![Exchange::once(
            Prompt::SendSrecord,
            Reply::SendSrecord(self.mot.clone()),
        )]
    }

    pub fn dialogue(&self) -> Dialogue {
        Dialogue::new(self.exchanges(), Finish::WriterReady)
    }
}

/// The writer parses hex digits in either case; lower case matches the vendor examples.
fn hex(v: u32) -> String {
    format!("{v:x}")
}

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing conclusive yet: read more output.
    Wait,
    /// Send this, then start a new "since last reply" buffer.
    Reply(Reply),
    /// The command completed.
    Finished(FwOutcome),
}

/// Why a dialogue stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogueError {
    #[error("flash writer: {0}")]
    Writer(#[from] FwError),
    #[error("flash writer asked {got:?} where the plan expected {expected:?}: the writer build or board differs from the plan")]
    UnexpectedPrompt { expected: Prompt, got: Prompt },
    #[error("flash writer asked {got:?} after the plan's last answer")]
    Exhausted { got: Prompt },
    #[error("flash writer reported completion before the plan's {missing:?} step")]
    EndedEarly { missing: Prompt },
}

impl DialogueError {
    pub fn class(&self) -> FlashClass {
        match self {
            DialogueError::Writer(e) => e.class(),
            _ => FlashClass::Configuration,
        }
    }
}

/// A plan being played against the writer. Pure: the caller owns the console.
///
/// Feed [`Dialogue::advance`] everything the console printed since the last reply was
/// *started* (so output during a file transfer, such as `ORER`, is seen), and reset that
/// buffer whenever it returns [`Next::Reply`]. Errors are checked before prompts because
/// the writer re-prints the same prompt after rejecting an answer.
#[derive(Debug, Clone)]
pub struct Dialogue {
    exchanges: Vec<Exchange>,
    pos: usize,
    finish: Finish,
}

impl Dialogue {
    pub fn new(exchanges: Vec<Exchange>, finish: Finish) -> Self {
        Dialogue {
            exchanges,
            pos: 0,
            finish,
        }
    }

    pub fn advance(&mut self, since_last_reply: &str) -> Result<Next, DialogueError> {
        match classify(since_last_reply) {
            Some(FwOutcome::Error(e)) => return Err(e.into()),
            Some(outcome) if self.finish.reached_by(&outcome) => {
                return self.finished(outcome);
            }
            _ => {}
        }
        match detect_prompt(since_last_reply) {
            None => Ok(Next::Wait),
            Some(prompt) => self.answer(prompt),
        }
    }

    fn finished(&self, outcome: FwOutcome) -> Result<Next, DialogueError> {
        let missing = self.exchanges[self.pos..]
            .iter()
            .find(|e| e.occurs == Occurs::Once);
        match missing {
            Some(e) => Err(DialogueError::EndedEarly { missing: e.expect }),
            None => Ok(Next::Finished(outcome)),
        }
    }

    /// Matches `prompt` against the next exchange, skipping optional ones the writer did
    /// not ask; a repeatable exchange stays current until a later one matches.
    fn answer(&mut self, prompt: Prompt) -> Result<Next, DialogueError> {
        for i in self.pos..self.exchanges.len() {
            let ex = &self.exchanges[i];
            if ex.expect == prompt {
                self.pos = if ex.occurs == Occurs::AnyNumber {
                    i
                } else {
                    i + 1
                };
                return Ok(Next::Reply(ex.reply.clone()));
            }
            if ex.occurs == Occurs::Once {
                return Err(DialogueError::UnexpectedPrompt {
                    expected: ex.expect,
                    got: prompt,
                });
            }
        }
        Err(DialogueError::Exhausted { got: prompt })
    }
}

// ---- S-record files and the save report ------------------------------------------------------

/// The lowest and highest data address of an S-record file, after checking every record's
/// byte count and checksum (the writer's own loader does not). `Err` names the first bad
/// record (1-based) and why.
pub fn srecord_span(text: &str) -> Result<(u32, u32), String> {
    let mut span: Option<(u32, u32)> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let b = line.as_bytes();
        if b.len() < 4 || b[0] != b'S' || !b[1].is_ascii_digit() || line.len() % 2 != 0 {
            return Err(format!("line {n} is not an S-record"));
        }
        let bytes = (2..line.len())
            .step_by(2)
            .map(|j| u8::from_str_radix(&line[j..j + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("line {n} has a character that is not hex"))?;
        let (count, rest) = bytes.split_first().ok_or(format!("line {n} is empty"))?;
        if usize::from(*count) != rest.len() {
            return Err(format!(
                "line {n}: byte count {count} but {} bytes follow",
                rest.len()
            ));
        }
        let sum = bytes[..bytes.len() - 1]
            .iter()
            .fold(0u8, |a, &x| a.wrapping_add(x));
        if !sum != bytes[bytes.len() - 1] {
            return Err(format!(
                "line {n}: checksum {:02X}, the record sums to {:02X}",
                bytes[bytes.len() - 1],
                !sum
            ));
        }
        let addr_len = match b[1] {
            b'1' => 2,
            b'2' => 3,
            b'3' => 4,
            _ => continue,
        };
        if rest.len() < addr_len + 2 {
            continue;
        }
        let addr = rest[..addr_len]
            .iter()
            .fold(0u32, |a, &x| (a << 8) | u32::from(x));
        let last = addr.wrapping_add((rest.len() - addr_len - 2) as u32);
        span = Some(match span {
            None => (addr, last),
            Some((lo, hi)) => (lo.min(addr), hi.max(last)),
        });
    }
    span.ok_or_else(|| "no data records (S1/S2/S3)".to_string())
}

static SAVE_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"SpiFlashMemory Stat Address : H'([0-9A-Fa-f]+)").expect("static regex")
});
static SAVE_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"SpiFlashMemory End Address\s*: H'([0-9A-Fa-f]+)").expect("static regex")
});

/// The flash range the writer reports in its `Qspi/HyperFlash Save Information` block
/// (the writer spells "Stat"), once both lines are complete.
pub fn save_information(output: &str) -> Option<(u32, u32)> {
    let lines = screen_lines(output);
    let complete = &lines[..lines.len().saturating_sub(1)];
    let find = |re: &Regex| {
        complete.iter().find_map(|l| {
            let c = re.captures(l)?;
            u32::from_str_radix(c.get(1)?.as_str(), 16).ok()
        })
    };
    Some((find(&SAVE_START)?, find(&SAVE_END)?))
}

// ---- pacing --------------------------------------------------------------------------------

/// Bits on the wire per byte at 8N1: start bit, 8 data bits, stop bit.
pub const BITS_PER_BYTE_8N1: u128 = 10;

/// Extra time per chunk over its wire time, in percent. The writer reads SCIF with a
/// polling loop that also parses each S-record byte and stores it, there is no flow control,
/// and a byte not fetched before the receive FIFO fills is lost (`ORER`) without the load
/// noticing. Sending at most 80 % of line rate (25 % longer than wire time) leaves the
/// target an idle gap every chunk to drain the FIFO even when its per-byte work
/// occasionally takes longer than a character time (87 µs at 115200 baud).
pub const PACING_MARGIN_PERCENT: u128 = 25;

/// How long to wait after writing `len` bytes before writing more.
pub fn chunk_delay(len: usize, baud: u32) -> Duration {
    // A zero baud rate is a configuration error elsewhere; never divide by zero here.
    let baud = u128::from(baud.max(1));
    let nanos = len as u128 * BITS_PER_BYTE_8N1 * 1_000_000_000 * (100 + PACING_MARGIN_PERCENT)
        / (baud * 100);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// `data` in chunks of at most `chunk` bytes (0 is treated as 1), each with the delay to
/// wait after writing it so the target's UART never overflows (see
/// [`PACING_MARGIN_PERCENT`]).
pub fn paced_chunks(
    data: &[u8],
    baud: u32,
    chunk: usize,
) -> impl Iterator<Item = (&[u8], Duration)> + '_ {
    data.chunks(chunk.max(1))
        .map(move |c| (c, chunk_delay(c.len(), baud)))
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

    /// One reply the dialogue gave during a replay and what the transcript shows typed.
    #[derive(Debug)]
    struct Answered {
        reply: Reply,
        echo: String,
    }

    /// Plays `block` through `dialogue` as if it arrived over the serial line, split at
    /// every character (reads can split anywhere). Returns the replies given and the end.
    fn replay(
        dialogue: &mut Dialogue,
        block: &str,
        answered: &mut Vec<Answered>,
    ) -> Result<Option<FwOutcome>, DialogueError> {
        let mut start = 0;
        let cuts = block
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .collect::<Vec<_>>();
        for cut in cuts {
            match dialogue.advance(&block[start..cut])? {
                Next::Wait => {}
                Next::Reply(reply) => {
                    answered.push(Answered {
                        reply,
                        echo: echo_after(block, cut),
                    });
                    start = cut;
                }
                Next::Finished(outcome) => return Ok(Some(outcome)),
            }
        }
        Ok(None)
    }

    /// What the transcript shows typed after a prompt: the rest of its line or, in the
    /// h3ulcb capture, the next line.
    fn echo_after(block: &str, at: usize) -> String {
        let rest = &block[at..];
        let mut lines = rest.lines();
        let same = lines.next().unwrap_or_default().trim();
        if !same.is_empty() {
            return same.to_string();
        }
        lines
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Line replies must match what the transcript shows typed (case-insensitively: the
    /// writer upper-cases commands and parses hex in either case).
    fn assert_echoes(answered: &[Answered]) {
        for a in answered {
            if let Reply::Line(text) = &a.reply {
                assert!(
                    a.echo.eq_ignore_ascii_case(text),
                    "replied {text:?}, transcript shows {:?}",
                    a.echo
                );
            }
        }
    }

    fn replies(answered: &[Answered]) -> Vec<Reply> {
        answered.iter().map(|a| a.reply.clone()).collect()
    }

    fn line(s: &str) -> Reply {
        Reply::Line(s.into())
    }

    // ---- prompt detection --------------------------------------------------------------

    #[test]
    fn detects_each_prompt_at_the_tail() {
        let cases = [
            (
                "SCIF Download mode (w/o verification)\r\nplease send !\r\n",
                Prompt::SendSrecord,
            ),
            (
                "Clear....\r\nplease send ! ('.' & CR stop load)\r\n",
                Prompt::SendSrecord,
            ),
            (
                "Clear....\r\nplease send ! (binary)\r\n",
                Prompt::SendBinary,
            ),
            ("please send binary file!\r\n", Prompt::SendBinary),
            (
                "   3 : HyperFlash      (SiP internal)\r\n  Select (1-3)>",
                Prompt::SelectDevice,
            ),
            ("---\r\n  Select area(0-2)>", Prompt::SelectArea),
            (
                "SW1 SW2 All OFF!   Setting OK? (Push Y key)",
                Prompt::SettingOk,
            ),
            (
                "SW31 ON!  Setting OK? (Push Y key) [In the case of Kriek Board]",
                Prompt::SettingOk,
            ),
            (
                "===== Please Input Program Top Address ============\r\n  Please Input : H'",
                Prompt::InputAddress,
            ),
            (
                "Please Input Start Address in sector :",
                Prompt::InputSector,
            ),
            (
                "Please Input Program Start Address : ",
                Prompt::InputProgramStart,
            ),
            ("Please Input File size(byte) : ", Prompt::InputFileSize),
            ("Check :H'00040000-0007FFFF,Clear OK?(y/n)", Prompt::ClearOk),
            (
                "ALL ERASE SpiFlash or HyperFlash memory\r\nClear OK?(y/n)",
                Prompt::ClearOk,
            ),
            (
                "Flash writer for R-Car H3/M3/M3N Series V1.06 Apr.25,2018\r\n>",
                Prompt::CommandPrompt,
            ),
        ];
        for (tail, want) in cases {
            assert_eq!(detect_prompt(tail), Some(want), "{tail:?}");
        }
    }

    #[test]
    fn no_prompt_while_output_continues() {
        for tail in [
            "",
            "  Select (1-3)>3\n\r",    // answered and echoed
            " READ ID OK.\r\n",        // a message, not a question
            "please send !",           // line not finished: might be "(binary)"
            "please send ! (bin",      // partial
            "  Please Input : H'e630", // echo in progress
            "Syntax Error\r\n",        // the writer will re-prompt
            "===== Please Input Qspi/HyperFlash Save Address ===\r\n",
        ] {
            assert_eq!(detect_prompt(tail), None, "{tail:?}");
        }
    }

    #[test]
    fn prompt_detection_tolerates_ansi_cr_backspace_and_orer() {
        // An answered DIP prompt is erased with DelStr (n BS, n spaces, n BS) and the next
        // one printed on the same line.
        let first = "SW1 SW2 All OFF!  Setting OK? (Push Y key)";
        let n = first.chars().count();
        let erase = format!(
            "{}{}{}",
            "\u{8}".repeat(n),
            " ".repeat(n),
            "\u{8}".repeat(n)
        );
        let tail = format!("{first}{erase}SW3 ON!  Setting OK? (Push Y key)");
        assert_eq!(detect_prompt(&tail), Some(Prompt::SettingOk));
        // Erased and nothing new yet: not a prompt any more.
        assert_eq!(detect_prompt(&format!("{first}{erase}")), None);
        assert_eq!(
            detect_prompt("\x1b[0m  Select (1-3)>\x1b[K"),
            Some(Prompt::SelectDevice)
        );
        assert_eq!(detect_prompt("\n\r>"), Some(Prompt::CommandPrompt));
        assert_eq!(
            detect_prompt("SW6[3] ON!     Setting OK? (Push Y key)ORER\r\n\r\n"),
            Some(Prompt::SettingOk)
        );
    }

    #[test]
    fn dip_instructions_survive_erasure() {
        let body = testdata::body(transcript!(
            "rcar-flash-writer-xls2-dipswitch-prompts-h3ulcb-partial.txt"
        ));
        assert_eq!(dip_instructions(&body), ["SW1 ON!", "SW6[3] ON!"]);
        let erased = "SW1 SW2 All OFF!  Setting OK? (Push Y key)\u{8}\u{8}  \u{8}\u{8}SW3 ON!  Setting OK? (Push Y key)";
        assert_eq!(dip_instructions(erased), ["SW1 SW2 All OFF!", "SW3 ON!"]);
    }

    // ---- transcript replays ------------------------------------------------------------

    #[test]
    fn xls2_hyperflash_salvator() {
        let blocks = testdata::blocks(transcript!(
            "rcar-flash-writer-xls2-hyperflash-salvator.txt"
        ));
        assert_eq!(blocks.len(), 2);
        let plan = Xls2Plan::hyperflash(0xe630_4000, 0x4_0000, "bl2-salvator-x.srec");
        let send = Reply::SendSrecord("bl2-salvator-x.srec".into());

        // First screen: up to the erase confirmation.
        let mut answered = Vec::new();
        let end = replay(&mut plan.dialogue(), &blocks[0], &mut answered).expect("dialogue");
        assert_eq!(end, None);
        assert_eq!(
            replies(&answered),
            [
                line("XLS2"),
                line("3"),
                line("e6304000"),
                line("40000"),
                send.clone(),
                Reply::Key('y')
            ]
        );
        assert_echoes(&answered);

        // The doc's full second screen: the range was erased without asking, then saved.
        let mut answered = Vec::new();
        let end = replay(&mut plan.dialogue(), &blocks[1], &mut answered).expect("dialogue");
        assert_eq!(end, Some(FwOutcome::SpiFlashSaved));
        assert_eq!(
            replies(&answered),
            [
                line("XLS2"),
                line("3"),
                line("e6304000"),
                line("40000"),
                send
            ]
        );
        assert_echoes(&answered);
        assert_eq!(classify(&blocks[1]), Some(FwOutcome::SpiFlashSaved));
    }

    #[test]
    fn xls3_binary_abloader() {
        let blocks = testdata::blocks(transcript!("rcar-flash-writer-xls3-binary-abloader.txt"));
        assert_eq!(blocks.len(), 2);
        let plan = Xls3Plan {
            size: 0x6adbd,
            flash_addr: 0xe4_0000,
            bin: "u-boot.bin".into(),
            flash: SpiFlash::HyperFlash,
        };
        let mut dialogue = plan.dialogue();
        let mut answered = Vec::new();
        // The raw binary goes between the blocks; the same dialogue continues.
        assert_eq!(replay(&mut dialogue, &blocks[0], &mut answered), Ok(None));
        let end = replay(&mut dialogue, &blocks[1], &mut answered).expect("dialogue");
        assert_eq!(end, Some(FwOutcome::SpiFlashSaved));
        assert_eq!(
            replies(&answered),
            [
                line("XLS3"),
                line("3"),
                line("6adbd"),
                line("e40000"),
                Reply::SendBinary("u-boot.bin".into())
            ]
        );
        assert_echoes(&answered);
        let banner = parse_banner(&blocks[0]).expect("banner");
        assert_eq!(
            (banner.kind, banner.version.as_str()),
            (WriterKind::FlashWriter, "V1.11")
        );
    }

    #[test]
    fn xls2_minimonitor_h3_starterkit() {
        let body = testdata::body(transcript!(
            "rcar-minimonitor-sample-loader-xls2-h3-starterkit.txt"
        ));
        let plan = Xls2Plan::hyperflash(0x5100_0000, 0x74_0000, "u-boot-elf.srec");
        let mut answered = Vec::new();
        let end = replay(&mut plan.dialogue(), &body, &mut answered).expect("dialogue");
        assert_eq!(end, Some(FwOutcome::SpiFlashSaved));
        // "SPI Data Clear(H'FF) Check : OK": already erased, no Clear OK? asked.
        assert_eq!(
            replies(&answered),
            [
                line("XLS2"),
                line("3"),
                line("51000000"),
                line("740000"),
                Reply::SendSrecord("u-boot-elf.srec".into())
            ]
        );
        assert_echoes(&answered);
        let banner = parse_banner(&body).expect("banner");
        assert_eq!(banner.kind, WriterKind::MiniMonitor);
        assert_eq!(banner.version, "V5.08");
    }

    #[test]
    fn xls2_dip_prompts_then_overrun_h3ulcb() {
        let body = testdata::body(transcript!(
            "rcar-flash-writer-xls2-dipswitch-prompts-h3ulcb-partial.txt"
        ));
        let plan = Xls2Plan::hyperflash(0x4400_0000, 0x1c_0000, "bl31.srec");
        let mut answered = Vec::new();
        let end = replay(&mut plan.dialogue(), &body, &mut answered);
        assert_eq!(
            replies(&answered),
            [line("XLS2"), line("3"), Reply::Key('y'), Reply::Key('y')]
        );
        assert_echoes(&answered);
        // The second prompt was answered as soon as it was complete, so the "ORER" glued
        // to it arrives in the next read, on a line of its own.
        let Err(err) = end else { panic!("{end:?}") };
        assert_eq!(
            err,
            DialogueError::Writer(FwError {
                kind: FwErrorKind::Overrun,
                line: "ORER".into()
            })
        );
        // Read as a whole, the same capture gives the glued line.
        let Some(FwOutcome::Error(whole)) = classify(&body) else {
            panic!("{:?}", classify(&body))
        };
        assert_eq!(
            whole.line,
            "SW6[3] ON!                Setting OK? (Push Y key)ORER"
        );
        assert_eq!(err.class(), FlashClass::Infrastructure);
    }

    #[test]
    fn xcs_erase_salvator_with_a_custom_dialogue() {
        let blocks = testdata::blocks(transcript!("rcar-flash-writer-xcs-erase-salvator.txt"));
        assert_eq!(blocks.len(), 2);
        let xcs = || {
            Dialogue::new(
                vec![
                    Exchange::once(Prompt::CommandPrompt, line("XCS")),
                    Exchange::once(Prompt::SelectDevice, line("3")),
                    Exchange::dip_switches(),
                ],
                Finish::FlashErased,
            )
        };
        let mut answered = Vec::new();
        assert_eq!(replay(&mut xcs(), &blocks[0], &mut answered), Ok(None));
        assert_eq!(
            replies(&answered),
            [line("XCS"), line("3"), Reply::Key('y')]
        );
        assert_eq!(dip_instructions(&blocks[0]), ["SW1 SW2 All OFF!"]);

        let mut answered = Vec::new();
        let end = replay(&mut xcs(), &blocks[1], &mut answered).expect("dialogue");
        assert_eq!(end, Some(FwOutcome::FlashErased));
        assert_echoes(&answered);
    }

    #[test]
    fn load_writer_in_scif_download_mode() {
        let blocks = testdata::blocks(transcript!("rcar-flash-writer-scif-download-banner.txt"));
        assert_eq!(blocks.len(), 2);
        assert!(in_scif_download_mode(&blocks[0]));
        let plan = LoadWriterPlan {
            mot: "AArch64_Flash_writer_SCIF_DUMMY_CERT_E6300400_salvator-x.mot".into(),
        };
        let mut dialogue = plan.dialogue();
        let mut answered = Vec::new();
        assert_eq!(replay(&mut dialogue, &blocks[0], &mut answered), Ok(None));
        assert_eq!(replies(&answered), [Reply::SendSrecord(plan.mot.clone())]);
        let end = replay(&mut dialogue, &blocks[1], &mut answered).expect("dialogue");
        let Some(FwOutcome::WriterReady(banner)) = end else {
            panic!("{end:?}")
        };
        assert_eq!(banner.version, "V1.06");
        assert_eq!(
            banner.line,
            "Flash writer for R-Car H3/M3/M3N Series V1.06 Apr.25,2018"
        );
        assert_eq!(detect_prompt(&blocks[1]), Some(Prompt::CommandPrompt));
    }

    #[test]
    fn emmc_write_em_w_appnote() {
        let body = testdata::body(transcript!("rcar-flash-writer-em_w-emmc-appnote.txt"));
        let plan = EmmcWritePlan {
            partition: EmmcPartition::Boot1,
            start_sector: 0x1e,
            program_addr: 0xe630_4000,
            srec: "bl2-salvator-x.srec".into(),
        };
        let mut answered = Vec::new();
        let end = replay(&mut plan.dialogue(), &body, &mut answered).expect("dialogue");
        assert_eq!(end, Some(FwOutcome::EmmcWritten));
        assert_eq!(
            replies(&answered),
            [
                line("EM_W"),
                line("1"),
                line("1e"),
                line("e6304000"),
                Reply::SendSrecord("bl2-salvator-x.srec".into())
            ]
        );
        assert_echoes(&answered);
    }

    // ---- classification ----------------------------------------------------------------

    #[test]
    fn documented_errors_without_a_transcript() {
        // DOMAIN.md lists these; no transcript shows them, so the inputs are built from the
        // writer's source (PutStr texts, CRLF line ends).
        let cases = [
            (
                "  Please Input : H'xyz\n\rSyntax Error\r\n  Please Input : H'",
                FwErrorKind::Syntax,
                FlashClass::Configuration,
            ),
            (
                "Please Input Start Address in sector :ffffffff\n\rParam Error\r\n",
                FwErrorKind::Param,
                FlashClass::Configuration,
            ),
            (
                "  Select area(0-2)>7\n\rPalam Error\r\n",
                FwErrorKind::Param,
                FlashClass::Configuration,
            ),
            (
                "eMMC Init ERROR!\r\n>",
                FwErrorKind::EmmcInit,
                FlashClass::Infrastructure,
            ),
        ];
        for (text, kind, class) in cases {
            let Some(FwOutcome::Error(e)) = classify(text) else {
                panic!("{text:?}: {:?}", classify(text))
            };
            assert_eq!((e.kind.clone(), e.class()), (kind, class), "{text:?}");
        }
    }

    #[test]
    fn device_id_error_names_the_dip_switches_and_read_id() {
        // Constructed from dgmodul4.c CheckQspiFlashId; not in a transcript.
        let out = "  Select (1-3)>3\n\r SW1 SW2 All OFF!  Setting OK? (Push Y key)\r\n DEVICE ID Error. Please check switch setting \r\n READ ID = 0x00000000\r\n>";
        let Some(FwOutcome::Error(e)) = classify(out) else {
            panic!("{:?}", classify(out))
        };
        assert_eq!(
            e,
            FwError {
                kind: FwErrorKind::DeviceId {
                    read_id: Some("00000000".into())
                },
                line: "DEVICE ID Error. Please check switch setting".into()
            }
        );
        assert_eq!(e.class(), FlashClass::Infrastructure);
        assert!(e.to_string().contains("DIP switches"), "{e}");
    }

    #[test]
    fn source_only_errors() {
        // Texts from dgmodul4.c, dg_emmc_access.c and main.c; not in DOMAIN.md or a
        // transcript.
        let cases = [
            ("Memory Boundary Error", FwErrorKind::MemoryBoundary),
            ("Address Input Error", FwErrorKind::AddressRange),
            ("Program over size Error", FwErrorKind::ProgramOverSize),
            ("Program Over Size Error", FwErrorKind::ProgramOverSize), // as issue #6 quotes it
            ("command not found", FwErrorKind::CommandNotFound),
            ("ERROR Load file.   <Download  file  DRAM(H'40000000-H'BFFFFFFF) , SecureRAM(H'E6300000-H'E631FFFF) ONLY > ", FwErrorKind::LoadAddress),
            ("EM_W mot file read ERR", FwErrorKind::SrecordLoad),
            ("Partition Size Over", FwErrorKind::PartitionSizeOver),
            ("EM_W ERR", FwErrorKind::EmmcWrite),
            ("EM_W Partition select FAIL", FwErrorKind::PartitionSelect),
        ];
        for (text, kind) in cases {
            let got = classify(&format!("{text}\r\n"));
            assert!(
                got.as_ref()
                    .map(FwOutcome::class)
                    .is_some_and(|c| c != FlashClass::Ok),
                "{text}"
            );
            let Some(FwOutcome::Error(e)) = got else {
                panic!("{text}")
            };
            assert_eq!(e.kind, kind, "{text}");
        }
    }

    #[test]
    fn successes_and_nothing() {
        assert_eq!(
            classify("SAVE SPI-FLASH....... complete!\r\n"),
            Some(FwOutcome::SpiFlashSaved)
        );
        // QSPI board: the "complete!" comes on the per-area lines.
        assert_eq!(
            classify("SAVE SPI-FLASH....... \r\nSpiArea : H'00000000-H'00FFFFFF complete!\r\n"),
            Some(FwOutcome::SpiFlashSaved)
        );
        assert_eq!(
            classify("SAVE -FLASH.......\r\nEM_W Complete!\r\n"),
            Some(FwOutcome::EmmcWritten)
        );
        assert_eq!(
            classify("EM_WB Complete!\r\n"),
            Some(FwOutcome::EmmcWritten)
        );
        assert_eq!(classify("EM_E Complete!\r\n"), Some(FwOutcome::FlashErased));
        assert_eq!(classify("SAVE SPI-FLASH....... complet"), None);
        assert_eq!(classify(" READ ID OK.\r\n"), None);
        // An overrun anywhere outweighs a later completion.
        assert_eq!(
            classify("ORER\r\nSAVE SPI-FLASH....... complete!\r\n").map(|o| o.class()),
            Some(FlashClass::Infrastructure)
        );
    }

    #[test]
    fn banner_needs_a_complete_line() {
        let line = "Flash writer for R-Car H3/M3/M3N Series V1.06 Apr.25,2018";
        assert_eq!(parse_banner(&line[..line.len() - 12]), None);
        assert_eq!(parse_banner(line), None);
        let banner = parse_banner(&format!("{line}\r\n")).expect("banner");
        assert_eq!(
            (banner.kind, banner.version.as_str()),
            (WriterKind::FlashWriter, "V1.06")
        );
    }

    // ---- dialogue errors ----------------------------------------------------------------

    #[test]
    fn rejected_answer_stops_the_dialogue() {
        let mut d = Xls2Plan::hyperflash(0xe630_4002, 0x4_0000, "x.srec").dialogue();
        assert_eq!(d.advance(">"), Ok(Next::Reply(line("XLS2"))));
        assert_eq!(
            d.advance("XLS2\n\r  Select (1-3)>"),
            Ok(Next::Reply(line("3")))
        );
        assert_eq!(
            d.advance("3\n\r READ ID OK.\r\n  Please Input : H'"),
            Ok(Next::Reply(line("e6304002")))
        );
        // The writer re-prompts after the error; the error must win over the prompt.
        let r = d.advance("e6304002\n\rMemory Boundary Error\r\n  Please Input : H'");
        assert!(
            matches!(
                &r,
                Err(DialogueError::Writer(FwError {
                    kind: FwErrorKind::MemoryBoundary,
                    ..
                }))
            ),
            "{r:?}"
        );
        assert_eq!(r.map_err(|e| e.class()), Err(FlashClass::Configuration));
    }

    #[test]
    fn unexpected_and_surplus_prompts() {
        let mut d = Xls2Plan::hyperflash(0, 0, "x.srec").dialogue();
        assert_eq!(
            d.advance("  Select area(0-2)>"),
            Err(DialogueError::UnexpectedPrompt {
                expected: Prompt::CommandPrompt,
                got: Prompt::SelectArea
            })
        );
        let mut d = LoadWriterPlan {
            mot: "w.mot".into(),
        }
        .dialogue();
        assert_eq!(
            d.advance("please send !\r\n"),
            Ok(Next::Reply(Reply::SendSrecord("w.mot".into())))
        );
        assert_eq!(
            d.advance("please send !\r\n"),
            Err(DialogueError::Exhausted {
                got: Prompt::SendSrecord
            })
        );
        let mut d = EmmcWritePlan {
            partition: EmmcPartition::User,
            start_sector: 0,
            program_addr: 0x5000_0000,
            srec: "u.srec".into(),
        }
        .dialogue();
        assert_eq!(
            d.advance("EM_W Complete!\r\n"),
            Err(DialogueError::EndedEarly {
                missing: Prompt::CommandPrompt
            })
        );
    }

    #[test]
    fn replies_type_cr_for_lines_and_nothing_after_keys() {
        assert_eq!(line("XLS2").typed_bytes(), Some(b"XLS2\r".to_vec()));
        assert_eq!(Reply::Key('y').typed_bytes(), Some(b"y".to_vec()));
        assert_eq!(Reply::SendSrecord("a".into()).typed_bytes(), None);
    }

    // ---- pacing ------------------------------------------------------------------------

    #[test]
    fn pacing_100_kib_at_115200() {
        let data = vec![0u8; 100 * 1024];
        let total: Duration = paced_chunks(&data, 115_200, 64).map(|(_, d)| d).sum();
        // Wire time: 102400 bytes * 10 bits / 115200 bit/s = 8.888... s; +25 % = 11.111... s.
        let wire = Duration::from_secs_f64(102_400.0 * 10.0 / 115_200.0);
        let expected = Duration::from_secs_f64(102_400.0 * 10.0 / 115_200.0 * 1.25);
        assert!(total > wire, "{total:?}");
        // Duration::abs_diff is newer than the crate's MSRV (1.80).
        let diff = total.abs_diff(expected);
        assert!(diff < Duration::from_millis(1), "{total:?} vs {expected:?}");
    }

    #[test]
    fn pacing_chunks_cover_the_data() {
        let data: Vec<u8> = (0..=255).collect();
        let chunks: Vec<(&[u8], Duration)> = paced_chunks(&data, 115_200, 100).collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.iter().map(|(c, _)| c.len()).sum::<usize>(), 256);
        assert_eq!(chunks[2].0.len(), 56);
        assert!(chunks[2].1 < chunks[0].1);
        // One 8N1 byte at 115200 is 86.8 µs on the wire; paced 108.5 µs.
        assert_eq!(chunk_delay(1, 115_200), Duration::from_nanos(108_506));
        // Degenerate inputs do not panic.
        assert_eq!(paced_chunks(&data, 0, 0).count(), 256);
        assert_eq!(paced_chunks(&[], 115_200, 64).count(), 0);
    }
}
