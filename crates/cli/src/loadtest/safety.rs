//! The reads behind `loadtest::safety`'s fund-safety check: the run's book's trial balance
//! and the live journal's head, through the service's own API.

use anyhow::Context;
use loadtest::safety::{FundCheck, JournalHead};

/// The live journal's head, read with a live key (`ops:read`).
pub async fn live_head(live: &client::Client) -> anyhow::Result<JournalHead> {
    let head = live.journal_head().await.context("reading the live journal's head")?;
    anyhow::ensure!(
        head.mode == "live",
        "--live-key read the {} book, not the live one",
        head.mode
    );
    Ok(JournalHead {
        batch_seq: head.batch_seq.parse().context("the journal head's batch_seq")?,
        hash: head.hash,
    })
}

/// The check after the run: `run`'s book's trial balance, and the live head again.
pub async fn check(
    run: &client::Client,
    book: &str,
    live: Option<&client::Client>,
    live_head_before: Option<JournalHead>,
) -> anyhow::Result<FundCheck> {
    let trial = run.trial_balance().await.context("reading the run's book's trial balance")?;
    let live_head_after = match live {
        Some(live) => Some(live_head(live).await?),
        None => None,
    };
    Ok(FundCheck {
        book: book.to_owned(),
        unbalanced_assets: trial
            .assets
            .iter()
            .filter(|asset| !asset.balanced)
            .map(|asset| asset.asset.clone())
            .collect(),
        assets_checked: trial.assets.len(),
        live_head_before,
        live_head_after,
        live_traffic: false,
    })
}
