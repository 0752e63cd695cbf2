//! Exchange rates as operators set them: stored, versioned and audited, so every node prices
//! cross-currency payments alike and every change says who made it and why. Each payment
//! still records the rate it used.

use money::AssetCode;
use payments::booking::Rate;
use serde::{Deserialize, Serialize};

/// One pair's rate at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRateState {
    /// The payment's asset.
    pub asset: AssetCode,
    /// The wallet's asset that pays for it.
    pub funding: AssetCode,
    /// Minor units of `funding` per minor unit of `asset`.
    pub rate: Rate,
    /// 1, 2, 3… per pair.
    pub version: u64,
    pub set_by: String,
    pub reason: String,
    pub set_at_ms: u64,
}

impl FxRateState {
    /// The pair's stable name: `USD/CNY`.
    pub fn pair(&self) -> String {
        pair(self.asset, self.funding)
    }
}

/// `USD/CNY`: a payment in USD funded from a CNY wallet.
pub fn pair(asset: AssetCode, funding: AssetCode) -> String {
    format!("{asset}/{funding}")
}
