//! The reads behind `loadtest::safety`'s fund-safety check: the run's book's trial balance,
//! the orders acknowledged unfinished, and the live journal's head, through the service's own
//! API.

use std::time::Duration;

use anyhow::Context;
use loadtest::safety::{FundCheck, JournalHead};

/// The orders of a run: how many the service acknowledged, and the ids of those it
/// acknowledged before they were final (a top-up waiting on its bank, say).
#[derive(Debug, Default)]
pub struct Acknowledged {
    pub n: u64,
    pub unfinished: Vec<String>,
}

/// Orders named in the verdict when some are not final.
const NOT_FINAL_NAMED: usize = 5;

/// Reads each acknowledged-but-unfinished order until it is final or `settle` has passed;
/// returns those still not final.
async fn not_final_after(
    run: &client::Client,
    mut waiting: Vec<String>,
    settle: Duration,
) -> anyhow::Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let mut still = Vec::new();
        for id in waiting {
            match run.get_order(&id).await {
                Ok(order) if order.is_final => {}
                Ok(_) => still.push(id),
                // Overloaded or slow: asked again in the next round.
                Err(error) if error.is_retryable() => still.push(id),
                Err(error) => return Err(error).with_context(|| format!("reading order {id}")),
            }
        }
        if still.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(still);
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

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

/// The check after the run: the orders acknowledged unfinished are waited for (up to
/// `settle`), then `run`'s book's trial balance, and the live head again.
pub async fn check(
    run: &client::Client,
    book: &str,
    live: Option<&client::Client>,
    live_head_before: Option<JournalHead>,
    acknowledged: Acknowledged,
    settle: Duration,
) -> anyhow::Result<FundCheck> {
    let not_final = not_final_after(run, acknowledged.unfinished, settle).await?;
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
        orders_acknowledged: acknowledged.n,
        orders_not_final_n: not_final.len() as u64,
        orders_not_final: not_final.into_iter().take(NOT_FINAL_NAMED).collect(),
    })
}
