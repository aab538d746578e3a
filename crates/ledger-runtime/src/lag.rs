//! Lag per merchant: how many of each merchant's events a consumer has not handled yet, and how
//! old the oldest of them is (decision record 0033).
//!
//! JetStream tells a durable consumer's lag only in total. Every `every`, the poller reads the
//! consumer's unhandled region of the stream, headers only, and counts by merchant (the second
//! token of the subject):
//!
//! - **on the shared consumer**: every event above its acknowledgement floor, except the
//!   events of a parked merchant from its park's origin on (those belong to its lane). An event
//!   acknowledged out of order above the floor still counts until the floor passes it, so the
//!   count is an upper bound while one event is held back; the oldest age is exact for the
//!   merchant whose event holds the floor;
//! - **in a parked merchant's lane**: every event of the merchant from where its lane resumes
//!   (see [`crate::parking`]).
//!
//! The results go to `ledger_merchant_pending_events` and
//! `ledger_merchant_oldest_unprocessed_age_seconds` for the [`TOP_MERCHANTS`] merchants that
//! rank highest on each, and to unlabelled totals per consumer
//! (`ledger_consumer_oldest_unprocessed_age_seconds`, `ledger_merchants_with_pending_events`,
//! `ledger_parked_merchants`). One read covers at most [`SCAN_LIMIT`] events per region; beyond
//! that the counts are lower bounds (the oldest ages stay exact, they come first).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer, DeliverPolicy};
use async_nats::jetstream::{self, stream::Stream};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::bus::{ConsumerSpec, EVENTS_STREAM};
use crate::metrics::{metrics, show_ranked, top_n, TOP_MERCHANTS};
use crate::parking::{Park, ParkReason, ParkingLot};
use crate::shutdown::Shutdown;

/// Events one read of a region covers at most.
pub const SCAN_LIMIT: u64 = 100_000;

/// How long one read waits for the next event before calling the region read.
const NEXT_WAIT: Duration = Duration::from_secs(2);

/// What one merchant is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MerchantLag {
    /// Unhandled events.
    pub pending: u64,
    /// Publication time of the oldest of them.
    pub oldest: DateTime<Utc>,
}

/// Lag by merchant, built from the events of the unhandled regions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LagTally {
    /// Per merchant.
    pub merchants: HashMap<String, MerchantLag>,
}

impl LagTally {
    /// Counts one unhandled event of `merchant` published at `published`.
    pub fn add(&mut self, merchant: &str, published: DateTime<Utc>) {
        self.merchants
            .entry(merchant.to_string())
            .and_modify(|lag| {
                lag.pending += 1;
                lag.oldest = lag.oldest.min(published);
            })
            .or_insert(MerchantLag {
                pending: 1,
                oldest: published,
            });
    }

    /// Pending events per merchant.
    pub fn pending(&self) -> Vec<(String, i64)> {
        self.merchants
            .iter()
            .map(|(m, lag)| (m.clone(), lag.pending as i64))
            .collect()
    }

    /// Age in seconds of each merchant's oldest unhandled event at `now` (at least 0).
    pub fn ages(&self, now: DateTime<Utc>) -> Vec<(String, f64)> {
        self.merchants
            .iter()
            .map(|(m, lag)| (m.clone(), age_seconds(lag.oldest, now)))
            .collect()
    }
}

fn age_seconds(oldest: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    ((now - oldest).num_milliseconds().max(0) as f64) / 1000.0
}

/// Whether the shared consumer still owns `merchant`'s event at `sequence`: always, unless
/// the merchant is parked and the event is at or after its park's origin.
pub fn shared_owns(parks: &HashMap<String, Park>, merchant: &str, sequence: u64) -> bool {
    parks
        .get(merchant)
        .is_none_or(|park| sequence < park.origin)
}

/// The consumer's filter subjects narrowed to one merchant: the merchant token (`*` in a
/// service's filters) replaced by `merchant`.
pub fn merchant_filters(filters: &[String], merchant: &str) -> Vec<String> {
    filters
        .iter()
        .map(|f| {
            let mut tokens: Vec<&str> = f.split('.').collect();
            if tokens.len() > 1 && (tokens[1] == "*" || tokens[1] == ">") {
                tokens[1] = merchant;
                if tokens.len() == 2 {
                    tokens.push(">");
                }
            }
            tokens.join(".")
        })
        .collect()
}

/// Parked merchants by reason label, every reason present (0 when none).
pub fn parked_by_reason(parks: &HashMap<String, Park>) -> Vec<(&'static str, i64)> {
    [
        ParkReason::Paused,
        ParkReason::Throttled,
        ParkReason::Backlog,
    ]
    .into_iter()
    .map(|r| {
        (
            r.label(),
            parks.values().filter(|p| p.reason == r).count() as i64,
        )
    })
    .collect()
}

/// The merchant token of an event subject (`magento.<merchant>.<entity>.<action>`).
pub fn subject_merchant(subject: &str) -> Option<&str> {
    let mut tokens = subject.split('.');
    let _prefix = tokens.next()?;
    tokens.next().filter(|m| !m.is_empty())
}

/// Reads the stream's events on `filters` from `start` on (headers only, at most
/// [`SCAN_LIMIT`]) and hands each one's merchant, sequence and publication time to `each`.
async fn read_region(
    stream: &Stream,
    filters: Vec<String>,
    start: u64,
    mut each: impl FnMut(&str, u64, DateTime<Utc>),
) -> Result<(), String> {
    let reader = stream
        .create_consumer(pull::OrderedConfig {
            filter_subjects: filters,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            },
            headers_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    // The reader's pending count at creation is the region's size: read that many, no more.
    let size = reader.cached_info().num_pending.min(SCAN_LIMIT);
    if size == 0 {
        return Ok(());
    }
    let mut messages = reader.messages().await.map_err(|e| e.to_string())?;
    for _ in 0..size {
        let Ok(Some(message)) = tokio::time::timeout(NEXT_WAIT, messages.next()).await else {
            break;
        };
        let message = message.map_err(|e| e.to_string())?;
        let info = message.info().map_err(|e| e.to_string())?;
        let published = DateTime::<Utc>::from_timestamp(
            info.published.unix_timestamp(),
            info.published.nanosecond(),
        )
        .unwrap_or_else(Utc::now);
        if let Some(merchant) = subject_merchant(message.subject.as_str()) {
            each(merchant, info.stream_sequence, published);
        }
    }
    Ok(())
}

/// One tally of `consumer`'s lag by merchant (described by `spec`, parks read from `lot`),
/// with the parks it was made under.
pub async fn measure(
    stream: &Stream,
    consumer: &mut Consumer<pull::Config>,
    spec: &ConsumerSpec,
    lot: &ParkingLot,
) -> Result<(LagTally, HashMap<String, Park>), String> {
    let parks: HashMap<String, Park> = lot
        .list()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let info = consumer.info().await.map_err(|e| e.to_string())?.clone();
    let mut tally = LagTally::default();
    if info.num_pending + info.num_ack_pending as u64 > 0 {
        read_region(
            stream,
            spec.filter_subjects.clone(),
            info.ack_floor.stream_sequence + 1,
            |merchant, sequence, published| {
                if shared_owns(&parks, merchant, sequence) {
                    tally.add(merchant, published);
                }
            },
        )
        .await?;
    }
    for (merchant, park) in &parks {
        read_region(
            stream,
            merchant_filters(&spec.filter_subjects, merchant),
            park.resume_at(),
            |m, _, published| {
                if m == merchant {
                    tally.add(m, published);
                }
            },
        )
        .await?;
    }
    Ok((tally, parks))
}

/// Refreshes the per-merchant lag gauges of `consumer` (described by `spec`) every `every`
/// until shutdown.
pub fn spawn_merchant_lag_poller(
    js: jetstream::Context,
    mut consumer: Consumer<pull::Config>,
    spec: ConsumerSpec,
    every: Duration,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        let durable = spec.durable.clone();
        let mut shown_pending = Vec::new();
        let mut shown_age = Vec::new();
        let mut lot = None;
        loop {
            if lot.is_none() {
                lot = ParkingLot::open(&js, &durable).await.ok();
            }
            let stream = js.get_stream(EVENTS_STREAM).await;
            if let (Some(lot), Ok(stream)) = (&lot, stream) {
                match measure(&stream, &mut consumer, &spec, lot).await {
                    Ok((tally, parks)) => {
                        let m = metrics();
                        let now = Utc::now();
                        let ages = tally.ages(now);
                        show_ranked(
                            &m.merchant_pending,
                            &durable,
                            &top_n(&tally.pending(), TOP_MERCHANTS),
                            &mut shown_pending,
                        );
                        show_ranked(
                            &m.merchant_oldest_age,
                            &durable,
                            &top_n(&ages, TOP_MERCHANTS),
                            &mut shown_age,
                        );
                        let oldest = ages.iter().map(|(_, a)| *a).fold(0.0, f64::max);
                        m.consumer_oldest_age
                            .with_label_values(&[&durable])
                            .set(oldest);
                        m.merchants_pending
                            .with_label_values(&[&durable])
                            .set(tally.merchants.len() as i64);
                        for (reason, count) in parked_by_reason(&parks) {
                            m.parked_now
                                .with_label_values(&[&durable, reason])
                                .set(count);
                        }
                    }
                    Err(e) => tracing::debug!(consumer = %durable, error = %e, "lag by merchant"),
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(every) => {},
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn park(origin: u64, reason: ParkReason) -> Park {
        Park {
            origin,
            done_through: 0,
            seen_max: 0,
            reason,
            since: at(0),
        }
    }

    #[test]
    fn the_tally_counts_per_merchant_and_keeps_the_oldest() {
        let mut tally = LagTally::default();
        tally.add("a", at(10));
        tally.add("b", at(30));
        tally.add("a", at(5));
        tally.add("a", at(20));
        let mut pending = tally.pending();
        pending.sort();
        assert_eq!(pending, vec![("a".to_string(), 3), ("b".to_string(), 1)]);
        let mut ages = tally.ages(at(40));
        ages.sort_by(|x, y| x.0.cmp(&y.0));
        // a's oldest at 5 s, b's at 30 s; now is 40 s.
        assert_eq!(ages, vec![("a".to_string(), 35.0), ("b".to_string(), 10.0)]);
        // A clock behind the publisher's gives 0, never a negative age.
        assert_eq!(
            tally.ages(at(0)).iter().map(|x| x.1).fold(0.0, f64::max),
            0.0
        );
    }

    #[test]
    fn a_parked_merchants_events_from_its_origin_belong_to_its_lane() {
        let parks = HashMap::from([("p".to_string(), park(100, ParkReason::Paused))]);
        assert!(shared_owns(&parks, "p", 99));
        assert!(!shared_owns(&parks, "p", 100));
        assert!(!shared_owns(&parks, "p", 150));
        assert!(shared_owns(&parks, "other", 150));
    }

    #[test]
    fn the_merchant_is_the_second_token_of_the_subject() {
        assert_eq!(
            subject_merchant("magento.acme.invoice.created"),
            Some("acme")
        );
        assert_eq!(subject_merchant("magento"), None);
        assert_eq!(subject_merchant("magento..invoice.created"), None);
    }

    #[test]
    fn filters_are_narrowed_to_one_merchant() {
        let filters = vec![
            "magento.*.invoice.created".to_string(),
            "magento.*.order.*".to_string(),
            "magento.>".to_string(),
        ];
        assert_eq!(
            merchant_filters(&filters, "acme"),
            vec![
                "magento.acme.invoice.created",
                "magento.acme.order.*",
                "magento.acme.>"
            ]
        );
    }

    #[test]
    fn parked_merchants_are_counted_by_reason_with_every_reason_present() {
        let parks = HashMap::from([
            ("a".to_string(), park(1, ParkReason::Paused)),
            ("b".to_string(), park(1, ParkReason::Paused)),
            ("c".to_string(), park(1, ParkReason::Backlog)),
        ]);
        assert_eq!(
            parked_by_reason(&parks),
            vec![("paused", 2), ("throttled", 0), ("backlog", 1)]
        );
        assert_eq!(
            parked_by_reason(&HashMap::new()),
            vec![("paused", 0), ("throttled", 0), ("backlog", 0)]
        );
    }
}
