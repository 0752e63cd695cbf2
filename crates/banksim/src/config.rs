//! The simulator's configuration: built-in defaults, then a TOML or JSON file, then
//! `--set path=value` flags, each layer changing only what it names.
//!
//! A file that lists `channels` defines the channel set: channels it names are kept (a
//! built-in channel's defaults fill the fields the file leaves out; an unknown name starts
//! from a fault-free generic channel), and built-in channels it does not name are removed.

use std::collections::BTreeMap;
use std::path::Path;

use money::{Amount, AssetCode};
use serde_json::Value;

use crate::faults::{
    ChannelFaults, Down, FaultConfigError, LateAnswer, Latency, OperationFaults, StatementFaults,
};
use crate::fees::{FeeRule, FeeSchedule, Rounding};
use crate::ids::ChannelName;
use crate::signing::Secret;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// The root of every random decision; `--seed` overrides it.
    pub seed: u64,
    /// How far a request's timestamp may be from the simulator's clock, in seconds.
    pub signature_skew_s: u64,
    /// Bound on each channel's operation log; beyond it new requests get 503.
    pub operations_max: usize,
    /// Where statement days turn: 00:00 at this many minutes east of UTC. A fixed offset is
    /// exact for a zone without daylight saving; the default 480 is Asia/Shanghai (UTC+08:00),
    /// where the simulated banks keep their books.
    pub statement_utc_offset_minutes: i32,
    pub callbacks: CallbackConfig,
    pub channels: BTreeMap<ChannelName, ChannelConfig>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    /// Deliveries of one event stop after this many attempts without a 2xx.
    pub attempts_max: u32,
    /// Wait before the second attempt; doubles after each failure up to `backoff_max_ms`.
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
    /// How long one delivery may take before it counts as failed.
    pub timeout_ms: u64,
    /// Bound on callback events being delivered at once; further events wait their turn.
    pub in_flight_max: usize,
}

impl Default for CallbackConfig {
    fn default() -> CallbackConfig {
        CallbackConfig {
            attempts_max: 6,
            backoff_ms: 200,
            backoff_max_ms: 10_000,
            timeout_ms: 5_000,
            in_flight_max: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelConfig {
    /// Shared with the platform; signs requests and callbacks.
    pub secret: Secret,
    /// Every amount at this channel is in this asset's minor units.
    pub currency: AssetCode,
    /// The platform's settlement account at the channel starts with this balance.
    pub reserve_initial_minor: Amount,
    pub fees: FeeSchedule,
    pub faults: ChannelFaults,
    /// Where results of asynchronous operations are POSTed; also settable at run time.
    pub callback_url: Option<String>,
}

impl Default for ChannelConfig {
    fn default() -> ChannelConfig {
        ChannelConfig {
            secret: Secret::new("banksim-dev-secret"),
            currency: cny(),
            reserve_initial_minor: Amount::new(10_000_000_000).unwrap_or(Amount::MAX),
            fees: FeeSchedule::default(),
            faults: ChannelFaults::none(),
            callback_url: None,
        }
    }
}

fn cny() -> AssetCode {
    match AssetCode::new("CNY") {
        Ok(code) => code,
        Err(_) => unreachable!("CNY is a valid asset code"),
    }
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        let mut channels = BTreeMap::new();
        for name in DEFAULT_CHANNELS {
            if let (Ok(channel), Some(config)) = (ChannelName::new(name), default_channel(name)) {
                channels.insert(channel, config);
            }
        }
        SimConfig {
            seed: 0,
            signature_skew_s: 300,
            operations_max: 10_000_000,
            statement_utc_offset_minutes: 480,
            callbacks: CallbackConfig::default(),
            channels,
        }
    }
}

/// The offsets in use on Earth run from UTC−12:00 to UTC+14:00.
pub const UTC_OFFSET_MINUTES_MIN: i32 = -12 * 60;
pub const UTC_OFFSET_MINUTES_MAX: i32 = 14 * 60;

pub const DEFAULT_CHANNELS: [&str; 3] = ["bank_a", "bank_b", "fastpay"];

fn rule(fixed_minor: u64, bps: u32, rounding: Rounding) -> FeeRule {
    FeeRule { fixed_minor, bps, rounding, max_minor: None }
}

fn faults(
    latency: Latency,
    declined_rate: f64,
    timeout_rate: f64,
    lost_response_rate: f64,
    late_success_rate: f64,
) -> OperationFaults {
    OperationFaults {
        latency,
        declined_rate,
        timeout_rate,
        lost_response_rate,
        late_success_rate,
        late_answer: LateAnswer::Processing,
        late_delay_ms: 2_000,
        ..OperationFaults::default()
    }
}

/// The built-in channels: `bank_a` cheap, slow and reliable; `bank_b` fast and pricier;
/// `fastpay` fastest and cheapest but the least reliable.
pub fn default_channel(name: &str) -> Option<ChannelConfig> {
    let (fees, operation, duplicate_callback_rate) = match name {
        "bank_a" => (
            FeeSchedule {
                debit: rule(0, 8, Rounding::Up),
                payout: rule(100, 0, Rounding::Up),
                refund: rule(0, 0, Rounding::Up),
            },
            faults(
                Latency { base_ms: 150, tail_mean_ms: 100, max_ms: 3_000 },
                0.002,
                0.001,
                0.0,
                0.0,
            ),
            0.0,
        ),
        "bank_b" => (
            FeeSchedule {
                debit: rule(20, 25, Rounding::HalfUp),
                payout: rule(200, 5, Rounding::HalfUp),
                refund: rule(10, 0, Rounding::Up),
            },
            faults(
                Latency { base_ms: 40, tail_mean_ms: 20, max_ms: 2_000 },
                0.005,
                0.002,
                0.001,
                0.01,
            ),
            0.01,
        ),
        "fastpay" => (
            FeeSchedule {
                debit: rule(0, 5, Rounding::Down),
                payout: rule(50, 0, Rounding::Up),
                refund: rule(0, 0, Rounding::Up),
            },
            faults(
                Latency { base_ms: 10, tail_mean_ms: 15, max_ms: 1_000 },
                0.03,
                0.02,
                0.01,
                0.05,
            ),
            0.05,
        ),
        _ => return None,
    };
    let mut query = faults(operation.latency, 0.0, operation.timeout_rate, 0.0, 0.0);
    query.late_delay_ms = 0;
    Some(ChannelConfig {
        secret: Secret::new(format!("{name}-dev-secret")),
        fees,
        faults: ChannelFaults {
            down: Down::Off,
            debit: operation,
            payout: operation,
            refund: operation,
            query,
            duplicate_callback_rate,
            statement: StatementFaults::default(),
            capacity_per_s: None,
        },
        ..ChannelConfig::default()
    })
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not valid TOML: {source}")]
    Toml { path: String, source: toml::de::Error },
    #[error("{path} is not valid JSON: {source}")]
    Json { path: String, source: serde_json::Error },
    #[error("--set {0}: expected path=value")]
    SetSyntax(String),
    #[error("--set {0}: cannot descend into a value that is not a table")]
    SetPath(String),
    #[error("invalid configuration: {0}")]
    Invalid(serde_json::Error),
    #[error("channel {channel}: {source}")]
    Faults { channel: ChannelName, source: FaultConfigError },
    #[error("the configuration names no channel")]
    NoChannels,
    #[error("statement_utc_offset_minutes must be between {min} and {max}, got {value}")]
    UtcOffset { value: i32, min: i32, max: i32 },
}

/// What the command line asks for, on top of the defaults.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources<'a> {
    pub file: Option<&'a Path>,
    pub sets: &'a [String],
    pub seed: Option<u64>,
    /// Zero every fault rate and latency (a perfect bank, for functional tests).
    pub no_faults: bool,
}

pub fn load(sources: &ConfigSources<'_>) -> Result<SimConfig, ConfigError> {
    let mut value = serde_json::to_value(SimConfig::default()).map_err(ConfigError::Invalid)?;
    if let Some(path) = sources.file {
        merge_file(&mut value, read_file(path)?);
    }
    for set in sources.sets {
        apply_set(&mut value, set)?;
    }
    let mut config: SimConfig = serde_json::from_value(value).map_err(ConfigError::Invalid)?;
    if let Some(seed) = sources.seed {
        config.seed = seed;
    }
    if sources.no_faults {
        for channel in config.channels.values_mut() {
            channel.faults = ChannelFaults::none();
        }
    }
    config.validate()?;
    Ok(config)
}

impl SimConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.channels.is_empty() {
            return Err(ConfigError::NoChannels);
        }
        let offsets = UTC_OFFSET_MINUTES_MIN..=UTC_OFFSET_MINUTES_MAX;
        if !offsets.contains(&self.statement_utc_offset_minutes) {
            return Err(ConfigError::UtcOffset {
                value: self.statement_utc_offset_minutes,
                min: UTC_OFFSET_MINUTES_MIN,
                max: UTC_OFFSET_MINUTES_MAX,
            });
        }
        for (channel, config) in &self.channels {
            config
                .faults
                .validate()
                .map_err(|source| ConfigError::Faults { channel: channel.clone(), source })?;
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    if path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("json")) {
        serde_json::from_str(&text).map_err(|source| ConfigError::Json { path: shown, source })
    } else {
        toml::from_str(&text).map_err(|source| ConfigError::Toml { path: shown, source })
    }
}

fn merge_file(base: &mut Value, mut file: Value) {
    if let Some(Value::Object(file_channels)) =
        file.as_object_mut().and_then(|o| o.remove("channels"))
    {
        let mut channels = serde_json::Map::new();
        for (name, overrides) in file_channels {
            let start = default_channel(&name).unwrap_or_default();
            let mut channel = serde_json::to_value(start).unwrap_or(Value::Null);
            merge(&mut channel, overrides);
            channels.insert(name, channel);
        }
        if let Some(object) = base.as_object_mut() {
            object.insert("channels".to_owned(), Value::Object(channels));
        }
    }
    merge(base, file);
}

/// Deep merge: tables merge key by key, anything else replaces.
fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// `channels.bank_a.fees.debit.bps=12`: the value is JSON if it parses as JSON, else a string.
fn apply_set(root: &mut Value, set: &str) -> Result<(), ConfigError> {
    let (path, raw) = set.split_once('=').ok_or_else(|| ConfigError::SetSyntax(set.to_owned()))?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    let mut slot = root;
    for key in path.split('.') {
        let object = slot.as_object_mut().ok_or_else(|| ConfigError::SetPath(set.to_owned()))?;
        slot =
            object.entry(key.to_owned()).or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    *slot = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.toml");
        let toml =
            "seed = 5\n[channels.bank_a.fees.debit]\nbps = 30\n[channels.mybank]\nsecret = \"x\"\n";
        std::fs::write(&path, toml).unwrap();
        let sets = vec!["channels.mybank.fees.payout.fixed_minor=7".to_owned()];
        let config =
            load(&ConfigSources { file: Some(&path), sets: &sets, seed: None, no_faults: false })
                .unwrap();
        assert_eq!(config.seed, 5);
        assert_eq!(config.statement_utc_offset_minutes, 480, "Asia/Shanghai by default");
        let names: Vec<&str> = config.channels.keys().map(|c| c.as_str()).collect();
        assert_eq!(names, ["bank_a", "mybank"]);
        let bank_a = &config.channels[&ChannelName::new("bank_a").unwrap()];
        assert_eq!(bank_a.fees.debit.bps, 30);
        assert_eq!(bank_a.fees.payout.fixed_minor, 100, "built-in default kept");
        let mybank = &config.channels[&ChannelName::new("mybank").unwrap()];
        assert_eq!(mybank.fees.payout.fixed_minor, 7);
    }

    #[test]
    fn the_capacity_limit_is_set_like_any_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.toml");
        std::fs::write(&path, "[channels.bank_a.faults]\ncapacity_per_s = 50\n[channels.bank_b]\n")
            .unwrap();
        let bank = |config: &SimConfig, name: &str| {
            config.channels[&ChannelName::new(name).unwrap()].faults.capacity_per_s
        };
        let from_file =
            load(&ConfigSources { file: Some(&path), ..ConfigSources::default() }).unwrap();
        assert_eq!((bank(&from_file, "bank_a"), bank(&from_file, "bank_b")), (Some(50), None));

        let sets = vec!["channels.bank_a.faults.capacity_per_s=100".to_owned()];
        let sources = ConfigSources { file: Some(&path), sets: &sets, ..ConfigSources::default() };
        assert_eq!(bank(&load(&sources).unwrap(), "bank_a"), Some(100), "--set over the file");
        let no_faults = ConfigSources { no_faults: true, ..sources };
        assert_eq!(bank(&load(&no_faults).unwrap(), "bank_a"), None, "--no-faults clears it");

        let sets = vec!["channels.bank_a.faults.capacity_per_s=0".to_owned()];
        let error = load(&ConfigSources { sets: &sets, ..ConfigSources::default() }).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Faults { source: FaultConfigError::ZeroCapacity, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("capacity_per_s must be at least 1"), "{error}");
    }

    #[test]
    fn bad_rates_are_rejected() {
        let sets = vec!["channels.bank_a.faults.debit.timeout_rate=1.5".to_owned()];
        let result = load(&ConfigSources { sets: &sets, ..ConfigSources::default() });
        assert!(matches!(result, Err(ConfigError::Faults { .. })), "{result:?}");
        let sets = vec!["statement_utc_offset_minutes=900".to_owned()];
        let result = load(&ConfigSources { sets: &sets, ..ConfigSources::default() });
        assert!(matches!(result, Err(ConfigError::UtcOffset { value: 900, .. })), "{result:?}");
        let sets = vec!["channels.bank_a.faults.statement.missing_rate=0.7".to_owned()];
        let sets = [sets, vec!["channels.bank_a.faults.statement.extra_rate=0.7".to_owned()]];
        let result = load(&ConfigSources { sets: &sets.concat(), ..ConfigSources::default() });
        assert!(matches!(result, Err(ConfigError::Faults { .. })), "{result:?}");
        let sets = vec!["channels.bank_a.faults.debit.bogus=1".to_owned()];
        assert!(matches!(
            load(&ConfigSources { sets: &sets, ..ConfigSources::default() }),
            Err(ConfigError::Invalid(_))
        ));
    }
}
