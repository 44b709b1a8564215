//! The `[flash]` table of a board file: one shape per `backend`, each with exactly its keys.

use super::error::ConfigError;
use super::limits::SecsRange;
use super::validate::Validation;
use serde::Deserialize;
use std::collections::BTreeMap;

/// How a board's software gets onto it before it is powered on, by `backend`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case")]
pub enum FlashCfg {
    /// Copy kernel/initrd into the lab's TFTP directory for U-Boot to fetch.
    Tftp(TftpFlash),
    /// Rockchip Maskrom/Loader mode over USB.
    Rkdeveloptool(RkFlash),
    /// Write a host image onto an SD-mux's card.
    ImageWrite(ImageWriteFlash),
    /// Renesas Flash Writer over SCIF download mode: the writer's S-record is sent to the
    /// boot ROM, then each image with `XLS2` (S-records) or `XLS3` (binary).
    FlashWriter(FlashWriterFlash),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TftpFlash {
    /// The directory the lab's TFTP server serves for this board.
    pub tftp_dir: String,
    /// Files to copy there, `name = "source path"`.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RkFlash {
    /// The loader `db` runs in Maskrom mode.
    pub loader: String,
    /// The image written with `wl` at `sector`.
    pub image: String,
    pub sector: u64,
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageWriteFlash {
    pub image: String,
    /// The block device (SD-mux) the image is written to.
    pub target: String,
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashWriterFlash {
    /// The Flash Writer S-record sent in SCIF download mode
    /// (`AArch64_Flash_writer_SCIF_DUMMY_CERT_E6300400_<board>.mot`).
    pub writer: String,
    /// The board's SCIF console as a local serial device path (the same port as
    /// `[console] device` on a real board; the simulator's pty in the sim).
    pub port: String,
    /// The SCIF's baud rate in download mode; the uploads are paced for it.
    #[serde(default = "default_scif_baud")]
    pub baud: u32,
    /// What to write, in order.
    #[serde(default)]
    pub images: Vec<FlashWriterImage>,
    pub timeout_s: u64,
}

fn default_scif_baud() -> u32 {
    115_200
}

/// One image written with the Flash Writer into the board's HyperFlash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashWriterImage {
    /// The name in the report (`image_sha256.<name>`).
    pub name: String,
    pub file: String,
    /// `"srec"` (written with `XLS2`) or `"binary"` (`XLS3`).
    pub format: ImageFormat,
    /// `Program Top Address` for an S-record image: the address its lowest record is meant
    /// to run at (`XLS2` stores the records relative to it).
    pub program_addr: Option<u32>,
    /// `Qspi/HyperFlash Save Address`: the offset in the flash.
    pub flash_addr: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    Srec,
    Binary,
}

/// The `backend` values, for names in messages and listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashBackend {
    Tftp,
    Rkdeveloptool,
    ImageWrite,
    FlashWriter,
}

impl FlashBackend {
    /// As written in the board file.
    pub fn name(self) -> &'static str {
        match self {
            FlashBackend::Tftp => "tftp",
            FlashBackend::Rkdeveloptool => "rkdeveloptool",
            FlashBackend::ImageWrite => "image-write",
            FlashBackend::FlashWriter => "flash-writer",
        }
    }
}

impl FlashCfg {
    pub fn backend(&self) -> FlashBackend {
        match self {
            FlashCfg::Tftp(_) => FlashBackend::Tftp,
            FlashCfg::Rkdeveloptool(_) => FlashBackend::Rkdeveloptool,
            FlashCfg::ImageWrite(_) => FlashBackend::ImageWrite,
            FlashCfg::FlashWriter(_) => FlashBackend::FlashWriter,
        }
    }

    /// The limit on the whole flash (every step shares it).
    pub fn timeout_s(&self) -> u64 {
        match self {
            FlashCfg::Tftp(c) => c.timeout_s,
            FlashCfg::Rkdeveloptool(c) => c.timeout_s,
            FlashCfg::ImageWrite(c) => c.timeout_s,
            FlashCfg::FlashWriter(c) => c.timeout_s,
        }
    }

    /// Every path-like value, with its key: these may carry `{placeholders}`.
    pub fn paths_mut(&mut self) -> Vec<(String, &mut String)> {
        match self {
            FlashCfg::Tftp(c) => {
                let mut v = vec![("flash.tftp_dir".to_string(), &mut c.tftp_dir)];
                v.extend(
                    c.files
                        .iter_mut()
                        .map(|(name, src)| (format!("flash.files.{name}"), src)),
                );
                v
            }
            FlashCfg::Rkdeveloptool(c) => vec![
                ("flash.loader".into(), &mut c.loader),
                ("flash.image".into(), &mut c.image),
            ],
            FlashCfg::ImageWrite(c) => vec![
                ("flash.image".into(), &mut c.image),
                ("flash.target".into(), &mut c.target),
            ],
            FlashCfg::FlashWriter(c) => {
                let mut v = vec![
                    ("flash.writer".to_string(), &mut c.writer),
                    ("flash.port".to_string(), &mut c.port),
                ];
                v.extend(
                    c.images
                        .iter_mut()
                        .enumerate()
                        .map(|(i, im)| (format!("flash.images[{i}].file"), &mut im.file)),
                );
                v
            }
        }
    }

    /// The same, read-only.
    pub fn paths(&self) -> Vec<(String, String)> {
        self.clone()
            .paths_mut()
            .into_iter()
            .map(|(k, v)| (k, v.clone()))
            .collect()
    }

    pub fn validate(&self, v: &mut Validation) {
        v.secs("flash.timeout_s", self.timeout_s(), SecsRange::STEP);
        for (key, value) in self.paths() {
            v.not_empty(&key, &value, "a path on the lab host");
        }
        if let FlashCfg::Rkdeveloptool(c) = self {
            validate_sector(v, c.sector);
        }
        if let FlashCfg::FlashWriter(c) = self {
            validate_flash_writer(v, c);
        }
    }
}

/// What the writer would refuse at its prompts is refused here, before the board is
/// touched: addresses it rejects (`Memory Boundary Error`, `Address Input Error`), an
/// S-record image without its program address.
fn validate_flash_writer(v: &mut Validation, c: &FlashWriterFlash) {
    if c.baud == 0 {
        v.err(
            "flash.baud",
            "is 0; expected the SCIF's baud rate, e.g. 115200",
        );
    }
    if c.images.is_empty() {
        v.err(
            "flash.images",
            "is empty; expected at least one image to write ([[flash.images]] with name, file, format, flash_addr)",
        );
    }
    for (i, im) in c.images.iter().enumerate() {
        let key = |k: &str| format!("flash.images[{i}].{k}");
        if im.flash_addr & 3 != 0 {
            v.err(
                key("flash_addr"),
                format!(
                    "is {:#x}; the Flash Writer wants a multiple of 4",
                    im.flash_addr
                ),
            );
        }
        if im.flash_addr > FLASH_WRITER_FLASH_END {
            v.err(
                key("flash_addr"),
                format!(
                    "is {:#x}; the serial flash ends at {FLASH_WRITER_FLASH_END:#x}",
                    im.flash_addr
                ),
            );
        }
        match (im.format, im.program_addr) {
            (ImageFormat::Srec, None) => v.err(
                key("program_addr"),
                "is missing; an S-record image needs the address it runs at (XLS2's Program Top Address)",
            ),
            (ImageFormat::Srec, Some(a)) if a & 3 != 0 => v.err(
                key("program_addr"),
                format!("is {a:#x}; the Flash Writer wants a multiple of 4"),
            ),
            (ImageFormat::Binary, Some(_)) => v.err(
                key("program_addr"),
                "is only for format = \"srec\" (XLS3 asks for the size instead)",
            ),
            _ => {}
        }
    }
}

/// The last address the Flash Writer's XLS2/XLS3 accept (64 MiB of QSPI board flash or
/// HyperFlash).
pub const FLASH_WRITER_FLASH_END: u32 = 0x03FF_FFFF;

/// rkdeveloptool parses the sector into 32 bits (strtoul, then a cast): a larger value
/// would wrap and write somewhere else.
fn validate_sector(v: &mut Validation, sector: u64) {
    if u32::try_from(sector).is_err() {
        v.err(
            "flash.sector",
            format!(
                "is {sector}; expected at most {} (rkdeveloptool's sector numbers are 32-bit)",
                u32::MAX
            ),
        );
    }
}

/// serde reads an internally tagged table through a buffer, so an error inside `[flash]`
/// comes back naming only `flash` and the table's first line. This reads the table again,
/// by its backend's own shape, to name the key (`flash.sector`) and the line it is on.
pub(super) fn locate_error(text: &str, err: ConfigError) -> ConfigError {
    if err.key != "flash" {
        return err;
    }
    let Some((sub, message)) = inner_error(text) else {
        return err;
    };
    let first = sub.split(['.', '[']).next().unwrap_or_default();
    ConfigError {
        key: format!("flash.{sub}"),
        line: key_line(text, first).or(err.line),
        message,
        ..err
    }
}

/// The flash table's own error as (sub-key, message), when it names a key.
fn inner_error(text: &str) -> Option<(String, String)> {
    let doc: toml::Table = text.parse().ok()?;
    let mut table = doc.get("flash")?.as_table()?.clone();
    let backend = table.remove("backend")?;
    let value = toml::Value::Table(table);
    fn probe<T: serde::de::DeserializeOwned>(v: toml::Value) -> Option<(String, String)> {
        let e = serde_path_to_error::deserialize::<_, T>(v).err()?;
        let sub = e.path().to_string();
        (sub != ".").then(|| (sub, e.into_inner().message().trim().to_string()))
    }
    match backend.as_str()? {
        "tftp" => probe::<TftpFlash>(value),
        "rkdeveloptool" => probe::<RkFlash>(value),
        "image-write" => probe::<ImageWriteFlash>(value),
        "flash-writer" => probe::<FlashWriterFlash>(value),
        _ => None,
    }
}

/// The 1-based line of `key` in the `[flash]` table.
fn key_line(text: &str, key: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Spans {
        flash: BTreeMap<toml::Spanned<String>, serde::de::IgnoredAny>,
    }
    let spans: Spans = toml::from_str(text).ok()?;
    let span = spans.flash.keys().find(|k| k.get_ref() == key)?.span();
    Some(super::load::line_of(text, span.start))
}

/// A document holding only a `[flash]` table, read as `Board::load` reads one.
#[cfg(test)]
fn load(text: &str) -> Result<FlashCfg, ConfigError> {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        flash: FlashCfg,
    }
    super::load::parse_toml::<Doc>(std::path::Path::new("b.toml"), text)
        .map(|d| d.flash)
        .map_err(|e| locate_error(text, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn errors(text: &str) -> Vec<(String, String)> {
        let f = load(text).unwrap();
        let mut v = Validation::new(Path::new("b.toml"));
        f.validate(&mut v);
        v.into_errors()
            .into_iter()
            .map(|e| (e.key, e.message))
            .collect()
    }

    #[test]
    fn each_backend_has_exactly_its_keys() {
        let f = load("[flash]\nbackend = \"tftp\"\ntftp_dir = \"/srv/tftp\"\ntimeout_s = 60\n")
            .unwrap();
        assert_eq!(f.backend(), FlashBackend::Tftp);
        assert_eq!(f.timeout_s(), 60);
        // a key of another backend is an unknown key, with its name and line
        let e = load(
            "[flash]\nbackend = \"tftp\"\ntftp_dir = \"/srv/tftp\"\nsector = 0\ntimeout_s = 60\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "flash.sector");
        assert_eq!(e.line, Some(4));
        assert!(e.message.starts_with("unknown field `sector`"), "{e}");
        assert!(e.message.contains("tftp_dir"), "{e}");
    }

    #[test]
    fn type_errors_inside_the_table_name_the_key_and_line() {
        let e = load(
            "[flash]\nbackend = \"rkdeveloptool\"\nloader = \"l\"\nimage = \"i\"\nsector = \"zero\"\ntimeout_s = 60\n",
        )
        .unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("flash.sector", Some(5)), "{e}");
        assert!(e.message.contains("expected u64"), "{e}");
    }

    #[test]
    fn missing_and_unknown_backends_are_named() {
        let e = load("[flash]\nbackend = \"fastboot\"\ntimeout_s = 60\n").unwrap_err();
        assert_eq!(e.key, "flash.backend");
        assert!(e.message.contains("unknown variant `fastboot`"), "{e}");
        let e = load("[flash]\ntimeout_s = 60\n").unwrap_err();
        assert_eq!(e.key, "flash");
        assert!(e.message.contains("missing field `backend`"), "{e}");
        let e =
            load("[flash]\nbackend = \"image-write\"\nimage = \"i\"\ntimeout_s = 1\n").unwrap_err();
        assert_eq!(e.key, "flash");
        assert!(e.message.contains("missing field `target`"), "{e}");
    }

    #[test]
    fn flash_writer_without_images_names_the_images_key() {
        let e = errors(
            "[flash]\nbackend = \"flash-writer\"\nwriter = \"w.mot\"\nport = \"/dev/ttyUSB0\"\ntimeout_s = 1800\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "flash.images");
        assert!(e[0].1.contains("is empty"), "{e:?}");
    }

    #[test]
    fn timeouts_paths_and_sectors_are_bounded() {
        let e = errors(
            "[flash]\nbackend = \"rkdeveloptool\"\nloader = \"\"\nimage = \"i\"\nsector = 4294967296\ntimeout_s = 0\n",
        );
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["flash.timeout_s", "flash.loader", "flash.sector"]);
        let e = errors(
            "[flash]\nbackend = \"image-write\"\nimage = \"i\"\ntarget = \"/dev/sdx\"\ntimeout_s = 9223372036854775807\n",
        );
        assert_eq!(e[0].0, "flash.timeout_s");
        assert!(e[0].1.contains("at most 24 h"), "{e:?}");
    }

    #[test]
    fn every_path_is_listed_for_placeholders() {
        let mut f = load(
            "[flash]\nbackend = \"tftp\"\ntftp_dir = \"{board_dir}/tftp\"\nfiles = { Image = \"{build}/Image\" }\ntimeout_s = 60\n",
        )
        .unwrap();
        let keys: Vec<String> = f.paths().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["flash.tftp_dir", "flash.files.Image"]);
        for (_, v) in f.paths_mut() {
            *v = v.replace("{build}", "/b");
        }
        let FlashCfg::Tftp(t) = &f else {
            panic!("{f:?}")
        };
        assert_eq!(t.files["Image"], "/b/Image");
    }
}
