//! The scenario file as written, and the checks that turn it into a [`Scenario`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    check_positive, Operation, OperationMix, Parties, Scenario, ScenarioError, Step, NAME_LEN_MAX,
    RATE_PER_S_MAX, STEPS_MAX, STEP_DURATION_S_MAX, ZIPF_EXPONENT_PERMILLE_MAX,
};
use crate::profile::ChannelProfile;
use crate::schedule::Arrivals;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScenarioFile {
    name: String,
    /// Seeds every random choice, so the same file offers the same load.
    #[serde(default)]
    seed: u64,
    slo: SloFile,
    #[serde(default)]
    warmup_s: u32,
    steps: StepsFile,
    mix: BTreeMap<Operation, u32>,
    parties: PartiesFile,
    #[serde(default)]
    channels: BTreeMap<String, ChannelProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SloFile {
    p99_ms: u32,
}

/// Either `rates_per_s = [..]`, or `start_rate_per_s`, a `factor` and `n_steps`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepsFile {
    duration_s: u32,
    #[serde(default)]
    arrivals: Arrivals,
    rates_per_s: Option<Vec<u32>>,
    start_rate_per_s: Option<u32>,
    factor: Option<String>,
    factor_permille: Option<u32>,
    n_steps: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartiesFile {
    n_customers: u32,
    n_merchants: u32,
    #[serde(default)]
    hot_merchant_share_permille: u32,
    zipf_exponent: Option<String>,
    zipf_exponent_permille: Option<u32>,
}

/// Checks every rule of the file and builds the scenario.
pub(super) fn check(file: ScenarioFile) -> Result<Scenario, ScenarioError> {
    if file.name.trim().is_empty() {
        return Err(ScenarioError::Empty { field: "name".to_owned() });
    }
    if file.name.len() > NAME_LEN_MAX {
        let value = file.name.len() as u64;
        return Err(ScenarioError::TooLarge {
            field: "name".to_owned(),
            value,
            max: NAME_LEN_MAX as u64,
        });
    }
    check_positive("slo.p99_ms", file.slo.p99_ms, u32::MAX)?;
    for (channel, profile) in &file.channels {
        profile.check(channel)?;
    }
    Ok(Scenario {
        name: file.name,
        seed: file.seed,
        slo_p99_ms: file.slo.p99_ms,
        warmup_s: file.warmup_s,
        arrivals: file.steps.arrivals,
        steps: steps_from_file(&file.steps)?,
        mix: OperationMix::new(file.mix)?,
        parties: parties_from_file(&file.parties)?,
        channels: file.channels,
    })
}

fn steps_from_file(file: &StepsFile) -> Result<Vec<Step>, ScenarioError> {
    let rates_per_s = match (&file.rates_per_s, file.start_rate_per_s) {
        (Some(_), Some(_)) => {
            return Err(ScenarioError::Both {
                field: "steps.rates_per_s/start_rate_per_s".to_owned(),
            })
        }
        (Some(rates_per_s), None) => rates_per_s.clone(),
        (None, Some(start_rate_per_s)) => ramp(file, start_rate_per_s)?,
        (None, None) => {
            let hint = "give rates_per_s, or start_rate_per_s with factor and n_steps";
            return Err(ScenarioError::Missing { field: "steps".to_owned(), hint });
        }
    };
    if rates_per_s.is_empty() {
        return Err(ScenarioError::Empty { field: "steps.rates_per_s".to_owned() });
    }
    if rates_per_s.len() > STEPS_MAX {
        let value = rates_per_s.len() as u64;
        return Err(ScenarioError::TooLarge {
            field: "steps".to_owned(),
            value,
            max: STEPS_MAX as u64,
        });
    }
    check_positive("steps.duration_s", file.duration_s, STEP_DURATION_S_MAX)?;
    let mut steps = Vec::with_capacity(rates_per_s.len());
    for (step_idx, &rate_per_s) in rates_per_s.iter().enumerate() {
        check_positive(&format!("steps.rates_per_s[{step_idx}]"), rate_per_s, RATE_PER_S_MAX)?;
        steps.push(Step::new(rate_per_s, file.duration_s)?);
    }
    Ok(steps)
}

/// A geometric ramp: each step offers `factor` times the one before, rounded to whole
/// requests per second in integer arithmetic.
fn ramp(file: &StepsFile, start_rate_per_s: u32) -> Result<Vec<u32>, ScenarioError> {
    let factor_permille =
        decimal_or_permille("steps.factor", file.factor.as_deref(), file.factor_permille)?.ok_or(
            ScenarioError::Missing {
                field: "steps.factor".to_owned(),
                hint: "e.g. factor = \"1.5\"",
            },
        )?;
    let n_steps = file.n_steps.ok_or(ScenarioError::Missing {
        field: "steps.n_steps".to_owned(),
        hint: "the number of steps",
    })?;
    check_positive("steps.start_rate_per_s", start_rate_per_s, RATE_PER_S_MAX)?;
    check_positive("steps.factor", factor_permille, u32::MAX)?;
    check_positive("steps.n_steps", n_steps, STEPS_MAX as u32)?;
    let mut rates_per_s = vec![start_rate_per_s];
    let mut rate_per_s = u64::from(start_rate_per_s);
    for step_idx in 1..n_steps {
        rate_per_s = (rate_per_s * u64::from(factor_permille) + 500) / 1000;
        let field = format!("steps (ramp step {step_idx})");
        if rate_per_s > u64::from(RATE_PER_S_MAX) {
            return Err(ScenarioError::TooLarge {
                field,
                value: rate_per_s,
                max: RATE_PER_S_MAX.into(),
            });
        }
        // Fits: just checked against a u32 limit.
        let rate = u32::try_from(rate_per_s).unwrap_or(RATE_PER_S_MAX);
        check_positive(&field, rate, RATE_PER_S_MAX)?;
        rates_per_s.push(rate);
    }
    Ok(rates_per_s)
}

fn parties_from_file(file: &PartiesFile) -> Result<Parties, ScenarioError> {
    check_positive("parties.n_customers", file.n_customers, u32::MAX)?;
    check_positive("parties.n_merchants", file.n_merchants, u32::MAX)?;
    if file.hot_merchant_share_permille > 1000 {
        let field = "parties.hot_merchant_share_permille".to_owned();
        return Err(ScenarioError::TooLarge {
            field,
            value: file.hot_merchant_share_permille.into(),
            max: 1000,
        });
    }
    let field = "parties.zipf_exponent";
    let zipf_exponent_permille =
        decimal_or_permille(field, file.zipf_exponent.as_deref(), file.zipf_exponent_permille)?
            .ok_or(ScenarioError::Missing {
                field: field.to_owned(),
                hint: "e.g. zipf_exponent = \"1.1\"; \"0\" is uniform",
            })?;
    if zipf_exponent_permille > ZIPF_EXPONENT_PERMILLE_MAX {
        let max = ZIPF_EXPONENT_PERMILLE_MAX.into();
        return Err(ScenarioError::TooLarge {
            field: field.to_owned(),
            value: zipf_exponent_permille.into(),
            max,
        });
    }
    Ok(Parties {
        n_customers: file.n_customers,
        n_merchants: file.n_merchants,
        hot_merchant_share_permille: file.hot_merchant_share_permille,
        zipf_exponent_permille,
    })
}

/// A ratio given either as `field = "1.25"` or as `field_permille = 1250`.
fn decimal_or_permille(
    field: &str,
    decimal: Option<&str>,
    permille: Option<u32>,
) -> Result<Option<u32>, ScenarioError> {
    match (decimal, permille) {
        (Some(_), Some(_)) => Err(ScenarioError::Both { field: field.to_owned() }),
        (Some(text), None) => parse_permille(text).map(Some).ok_or_else(|| {
            ScenarioError::Decimal { field: field.to_owned(), text: text.to_owned() }
        }),
        (None, permille) => Ok(permille),
    }
}

/// Parses a non-negative decimal with at most three places into thousandths, exactly:
/// `"1.1"` is 1100. No float is involved, so `"0.3"` cannot become 299.
pub(super) fn parse_permille(text: &str) -> Option<u32> {
    let (whole, fraction) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || fraction.len() > 3 || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let mut fraction_permille = 0;
    for (digit_idx, digit) in fraction.bytes().enumerate() {
        fraction_permille += u32::from(digit - b'0') * [100, 10, 1][digit_idx];
    }
    whole.parse::<u32>().ok()?.checked_mul(1000)?.checked_add(fraction_permille)
}
