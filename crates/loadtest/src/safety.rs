//! The fund-safety check after a run (资金安全核对): the run's book balances, every order
//! the service acknowledged reached a final state, and the live book's journal is where it
//! was.
//!
//! A load run goes through a test key, so it acts on the test book (the service's test mode)
//! and cannot reach live money. The check proves it after the fact from what the service
//! itself reports: the trial balance of the run's book balances for every asset, and the
//! live journal's head (its last batch and chain hash, read with a live key before the
//! set-up and after the last step) did not move — unless live traffic was declared, in which
//! case a moved head is reported, not failed: test keys cannot write the live book, so the
//! batches are live ones.

use serde::{Deserialize, Serialize};

/// A journal's head: its last batch and the chain hash there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHead {
    pub batch_seq: u64,
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundCheck {
    /// The book the run acted on: `test` (a test key) or `live`.
    pub book: String,
    /// Assets whose trial balance did not balance in the run's book; empty when it balances.
    pub unbalanced_assets: Vec<String>,
    /// Assets the trial balance covered.
    pub assets_checked: usize,
    /// The live journal's head before the set-up and after the last step; none without a
    /// live key to read it.
    pub live_head_before: Option<JournalHead>,
    pub live_head_after: Option<JournalHead>,
    /// Live traffic ran beside the test (declared): a moved live head is then not a failure.
    pub live_traffic: bool,
    /// Orders the service acknowledged (created or found, 2xx) during the run.
    #[serde(default)]
    pub orders_acknowledged: u64,
    /// Of those, the ones still not final when the check gave up waiting (at most a few
    /// named; `orders_not_final_n` counts them all).
    #[serde(default)]
    pub orders_not_final: Vec<String>,
    #[serde(default)]
    pub orders_not_final_n: u64,
}

impl FundCheck {
    /// Batches the live journal gained during the run; none when it was not read.
    pub fn live_batches_added(&self) -> Option<u64> {
        match (&self.live_head_before, &self.live_head_after) {
            (Some(before), Some(after)) => Some(after.batch_seq.saturating_sub(before.batch_seq)),
            _ => None,
        }
    }

    /// Whether the live head is exactly where it was (same batch, same hash).
    pub fn live_untouched(&self) -> Option<bool> {
        match (&self.live_head_before, &self.live_head_after) {
            (Some(before), Some(after)) => Some(before == after),
            _ => None,
        }
    }

    pub fn passed(&self) -> bool {
        self.unbalanced_assets.is_empty()
            && self.orders_not_final_n == 0
            && (self.live_traffic || self.live_untouched() != Some(false))
    }

    /// One line for the terminal and the report.
    pub fn verdict(&self) -> String {
        let books = if self.unbalanced_assets.is_empty() {
            format!("the {} book balances ({} assets)", self.book, self.assets_checked)
        } else {
            format!(
                "the {} book does NOT balance: {}",
                self.book,
                self.unbalanced_assets.join(", ")
            )
        };
        let live = match (self.live_untouched(), self.live_batches_added()) {
            (None, _) | (_, None) => "the live journal was not read (no live key)".to_owned(),
            (Some(true), _) => format!(
                "the live journal is where it was (batch {})",
                self.live_head_before.as_ref().map_or(0, |head| head.batch_seq)
            ),
            (Some(false), Some(added)) if self.live_traffic => {
                format!("the live journal moved by {added} batches: live traffic, as declared")
            }
            (Some(false), Some(added)) => format!("the live journal MOVED by {added} batches"),
        };
        let orders = if self.orders_not_final_n == 0 {
            format!("all {} acknowledged orders are final", self.orders_acknowledged)
        } else {
            format!(
                "{} of {} acknowledged orders are NOT final (e.g. {})",
                self.orders_not_final_n,
                self.orders_acknowledged,
                self.orders_not_final.join(", ")
            )
        };
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        format!("Fund-safety check {verdict}: {books}; {orders}; {live}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(batch_seq: u64, hash: &str) -> Option<JournalHead> {
        Some(JournalHead { batch_seq, hash: hash.to_owned() })
    }

    fn check(before: Option<JournalHead>, after: Option<JournalHead>) -> FundCheck {
        FundCheck {
            book: "test".into(),
            unbalanced_assets: Vec::new(),
            assets_checked: 2,
            live_head_before: before,
            live_head_after: after,
            live_traffic: false,
            orders_acknowledged: 10,
            orders_not_final: Vec::new(),
            orders_not_final_n: 0,
        }
    }

    #[test]
    fn a_balanced_run_that_left_the_live_book_alone_passes() {
        let passed = check(head(7, "ab"), head(7, "ab"));
        assert!(passed.passed());
        assert_eq!(passed.live_untouched(), Some(true));
        assert!(passed.verdict().starts_with("Fund-safety check passed"), "{}", passed.verdict());
    }

    #[test]
    fn a_moved_live_head_fails_unless_live_traffic_was_declared() {
        let moved = check(head(7, "ab"), head(9, "cd"));
        assert!(!moved.passed());
        assert_eq!(moved.live_batches_added(), Some(2));
        assert!(moved.verdict().contains("MOVED by 2 batches"), "{}", moved.verdict());
        let declared = FundCheck { live_traffic: true, ..moved };
        assert!(declared.passed());
        // The same batch with another hash is a rewritten journal: never untouched.
        assert_eq!(check(head(7, "ab"), head(7, "zz")).live_untouched(), Some(false));
    }

    #[test]
    fn unbalanced_books_fail_and_no_live_key_is_said() {
        let unbalanced = FundCheck { unbalanced_assets: vec!["CNY".into()], ..check(None, None) };
        assert!(!unbalanced.passed());
        assert!(unbalanced.verdict().contains("does NOT balance: CNY"));
        assert!(check(None, None).passed());
        assert!(check(None, None).verdict().contains("not read (no live key)"));
    }

    #[test]
    fn an_acknowledged_order_left_unfinished_fails() {
        let all_final = check(None, None);
        assert!(all_final.verdict().contains("all 10 acknowledged orders are final"));
        let stuck = FundCheck {
            orders_not_final: vec!["pay_1".into()],
            orders_not_final_n: 3,
            ..check(head(7, "ab"), head(7, "ab"))
        };
        assert!(!stuck.passed());
        assert!(stuck.verdict().contains("3 of 10 acknowledged orders are NOT final (e.g. pay_1)"));
    }
}
