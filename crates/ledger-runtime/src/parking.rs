//! Parking: how one merchant's stalled or flooding work is taken off the shared consumer so
//! that it holds only its own events (decision record 0011).
//!
//! Every service reads all merchants' events through one durable consumer. A merchant whose
//! events cannot move (Sage disconnected, call budget spent) or that sends more than its share
//! at once would otherwise hold the shared consumer's delivery slots, and every other merchant
//! would wait behind it. Such a merchant is *parked*:
//!
//! - a park record `<durable>.<merchant>` in the NATS KV bucket [`PARKED_BUCKET`] says from which
//!   stream sequence on the merchant's events are handled by its own **lane**;
//! - the shared consumer acknowledges the merchant's later deliveries at once, after noting the
//!   highest sequence it passed over (`seen_max`) in the record, so nothing is held;
//! - the lane reads the merchant's subjects from the stream (its own ephemeral reader), handles
//!   them in order at the merchant's own pace, and records its progress;
//! - when the lane has caught up, it deletes the record only if no later event was passed over
//!   meanwhile (a compare-and-set on the record's revision), so no event falls between the lane
//!   and the shared consumer. The merchant then goes back to the shared consumer.
//!
//! The record lives in JetStream, not in memory: after a crash, or on another replica, the
//! lane starts again from its recorded progress. One replica runs a merchant's lane at a time,
//! by a lease in [`LEASES_BUCKET`] that expires when its holder dies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::ProcessError;

/// Bucket of park records (file storage: a park outlives restarts).
pub const PARKED_BUCKET: &str = "LEDGER_PARKED";
/// Bucket of lane leases (memory storage, entries expire after [`LEASE_TTL`]).
pub const LEASES_BUCKET: &str = "LEDGER_PARK_LEASES";
/// How long a lane lease outlives a holder that stopped renewing it.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// Why a merchant was parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// Sage disconnected or the merchant paused: nothing can move until they reconnect.
    Paused,
    /// The merchant's Sage call budget is spent for now.
    Throttled,
    /// More of the merchant's events arrived at once than its in-flight share.
    Backlog,
}

impl ParkReason {
    /// Label used in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            ParkReason::Paused => "paused",
            ParkReason::Throttled => "throttled",
            ParkReason::Backlog => "backlog",
        }
    }
}

/// A park record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Park {
    /// First stream sequence the lane owns; earlier deliveries still belong to the shared
    /// consumer.
    pub origin: u64,
    /// Last sequence the lane has handled (0 before its first).
    pub done_through: u64,
    /// Highest sequence the shared consumer passed over (acknowledged without handling).
    pub seen_max: u64,
    /// Why the merchant was parked.
    pub reason: ParkReason,
    /// When.
    pub since: DateTime<Utc>,
}

impl Park {
    /// The sequence the lane reads from.
    pub fn resume_at(&self) -> u64 {
        self.origin.max(self.done_through.saturating_add(1))
    }
}

fn kv_error(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::transient(format!("parking: {e}"))
}

/// One service's park records, with a local view kept fresh by a watch.
#[derive(Clone)]
pub struct ParkingLot {
    durable: String,
    parked: kv::Store,
    leases: kv::Store,
    js: jetstream::Context,
    view: Arc<Mutex<HashMap<String, Park>>>,
}

impl ParkingLot {
    /// Opens (creating if needed) the buckets for the consumer `durable`, loads its parks and
    /// keeps the local view in step with every replica's changes.
    pub async fn open(js: &jetstream::Context, durable: &str) -> Result<Self, ProcessError> {
        let parked = crate::bus::key_value(js, PARKED_BUCKET, None)
            .await
            .map_err(kv_error)?;
        let leases = crate::bus::key_value(js, LEASES_BUCKET, Some(LEASE_TTL))
            .await
            .map_err(kv_error)?;
        let lot = ParkingLot {
            durable: durable.to_string(),
            parked,
            leases,
            js: js.clone(),
            view: Arc::default(),
        };
        let mut watch = lot
            .parked
            .watch_with_history(format!("{durable}.>"))
            .await
            .map_err(kv_error)?;
        // The initial values arrive first; wait for them so the view is complete at start.
        let initial = lot.list().await?;
        lot.view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(initial);
        let view = lot.view.clone();
        let prefix = format!("{durable}.");
        tokio::spawn(async move {
            while let Some(entry) = watch.next().await {
                let Ok(entry) = entry else { continue };
                let Some(merchant) = entry.key.strip_prefix(&prefix) else {
                    continue;
                };
                let mut view = view.lock().unwrap_or_else(|p| p.into_inner());
                match entry.operation {
                    kv::Operation::Put => match serde_json::from_slice::<Park>(&entry.value) {
                        Ok(park) => {
                            view.insert(merchant.to_string(), park);
                        }
                        Err(_) => {
                            view.remove(merchant);
                        }
                    },
                    kv::Operation::Delete | kv::Operation::Purge => {
                        view.remove(merchant);
                    }
                }
            }
        });
        Ok(lot)
    }

    fn key(&self, merchant: &str) -> String {
        format!("{}.{merchant}", self.durable)
    }

    /// The park of `merchant` as this process last heard of it.
    pub fn local(&self, merchant: &str) -> Option<Park> {
        self.view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant)
            .cloned()
    }

    fn remember(&self, merchant: &str, park: Option<Park>) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        match park {
            Some(p) => view.insert(merchant.to_string(), p),
            None => view.remove(merchant),
        };
    }

    /// Every park of this consumer, read from the bucket.
    pub async fn list(&self) -> Result<Vec<(String, Park)>, ProcessError> {
        let prefix = format!("{}.", self.durable);
        let mut out = Vec::new();
        let mut keys = match self.parked.keys().await {
            Ok(k) => k,
            Err(e) => return Err(kv_error(e)),
        };
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            if let Ok(k) = k {
                if let Some(m) = k.strip_prefix(&prefix) {
                    names.push(m.to_string());
                }
            }
        }
        for merchant in names {
            if let Some((park, _)) = self.read(&merchant).await? {
                out.push((merchant, park));
            }
        }
        Ok(out)
    }

    async fn read(&self, merchant: &str) -> Result<Option<(Park, u64)>, ProcessError> {
        let entry = self
            .parked
            .entry(self.key(merchant))
            .await
            .map_err(kv_error)?;
        Ok(entry.and_then(|e| match e.operation {
            kv::Operation::Put => serde_json::from_slice::<Park>(&e.value)
                .ok()
                .map(|p| (p, e.revision)),
            _ => None,
        }))
    }

    /// Read-modify-write of a merchant's record with compare-and-set; `change` sees the current
    /// record (or none) and returns the new one (or none to leave it as it is).
    async fn cas(
        &self,
        merchant: &str,
        mut change: impl FnMut(Option<&Park>) -> Option<Park>,
    ) -> Result<Option<Park>, ProcessError> {
        let key = self.key(merchant);
        for _ in 0..100 {
            let current = self.read(merchant).await?;
            let Some(next) = change(current.as_ref().map(|(p, _)| p)) else {
                return Ok(current.map(|(p, _)| p));
            };
            let body = Bytes::from(serde_json::to_vec(&next).expect("a park serialises"));
            let written = match &current {
                Some((_, revision)) => self
                    .parked
                    .update(&key, body, *revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => self
                    .parked
                    .create(&key, body)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            if written.is_ok() {
                self.remember(merchant, Some(next.clone()));
                return Ok(Some(next));
            }
        }
        Err(ProcessError::transient("parking: record too contended"))
    }

    /// Parks `merchant` from `sequence` on (or keeps an existing park, moving its origin back
    /// when `sequence` is earlier). Returns the park in force.
    pub async fn park(
        &self,
        merchant: &str,
        sequence: u64,
        reason: ParkReason,
    ) -> Result<Park, ProcessError> {
        let park = self
            .cas(merchant, |current| match current {
                None => Some(Park {
                    origin: sequence,
                    done_through: 0,
                    seen_max: sequence,
                    reason,
                    since: Utc::now(),
                }),
                Some(p) if sequence < p.origin => Some(Park {
                    origin: sequence,
                    ..p.clone()
                }),
                Some(_) => None,
            })
            .await?;
        Ok(park.expect("a park exists after parking"))
    }

    /// Notes that the shared consumer passes over `sequence` of a parked merchant. Returns
    /// false when the merchant is no longer parked (or `sequence` is before its park): the
    /// caller must then handle the event itself.
    pub async fn pass_over(&self, merchant: &str, sequence: u64) -> Result<bool, ProcessError> {
        let mut parked = false;
        self.cas(merchant, |current| {
            parked = current.is_some_and(|p| sequence >= p.origin);
            match current {
                Some(p) if parked && sequence > p.seen_max => Some(Park {
                    seen_max: sequence,
                    ..p.clone()
                }),
                _ => None,
            }
        })
        .await?;
        if !parked && self.local(merchant).is_some() {
            // Our view was stale: the lane unparked on another replica, or this sequence came
            // before the park.
            if self.read(merchant).await?.is_none() {
                self.remember(merchant, None);
            }
        }
        Ok(parked)
    }

    /// Records that the lane handled everything up to `sequence`.
    pub async fn progress(&self, merchant: &str, sequence: u64) -> Result<(), ProcessError> {
        self.cas(merchant, |current| match current {
            Some(p) if sequence > p.done_through => Some(Park {
                done_through: sequence,
                ..p.clone()
            }),
            _ => None,
        })
        .await?;
        Ok(())
    }

    /// Ends the park if the lane has handled everything the shared consumer passed over.
    /// Returns whether the merchant is back on the shared consumer.
    pub async fn try_unpark(&self, merchant: &str) -> Result<bool, ProcessError> {
        let key = self.key(merchant);
        for _ in 0..100 {
            let Some((park, revision)) = self.read(merchant).await? else {
                self.remember(merchant, None);
                return Ok(true);
            };
            if park.seen_max > park.done_through {
                return Ok(false);
            }
            match self
                .parked
                .delete_expect_revision(&key, Some(revision))
                .await
            {
                Ok(()) => {
                    self.remember(merchant, None);
                    return Ok(true);
                }
                // Someone passed over another event meanwhile: read again.
                Err(_) => continue,
            }
        }
        Err(ProcessError::transient("parking: record too contended"))
    }

    /// Takes or renews the lease on `merchant`'s lane for `holder`. Returns false while
    /// another holder has it.
    pub async fn lease(&self, merchant: &str, holder: &str) -> Result<bool, ProcessError> {
        let key = self.key(merchant);
        let entry = match self.leases.entry(key.clone()).await {
            Ok(entry) => entry,
            Err(_) => {
                // The lease bucket is in memory: a nats-server restart loses it. Create it
                // again (the handle addresses it by name) and read once more.
                crate::bus::key_value(&self.js, LEASES_BUCKET, Some(LEASE_TTL))
                    .await
                    .map_err(kv_error)?;
                self.leases.entry(key.clone()).await.map_err(kv_error)?
            }
        };
        match entry {
            None => Ok(self
                .leases
                .create(&key, Bytes::from(holder.to_string()))
                .await
                .is_ok()),
            Some(e) if e.operation != kv::Operation::Put => Ok(self
                .leases
                .update(&key, Bytes::from(holder.to_string()), e.revision)
                .await
                .is_ok()),
            Some(e) if e.value.as_ref() == holder.as_bytes() => Ok(self
                .leases
                .update(&key, Bytes::from(holder.to_string()), e.revision)
                .await
                .is_ok()),
            Some(_) => Ok(false),
        }
    }

    /// Gives the lease back (best effort; it expires anyway).
    pub async fn release(&self, merchant: &str) {
        let _ = self.leases.delete(self.key(merchant)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_resumes_after_its_progress_and_never_before_its_origin() {
        let park = Park {
            origin: 40,
            done_through: 0,
            seen_max: 90,
            reason: ParkReason::Backlog,
            since: Utc::now(),
        };
        assert_eq!(park.resume_at(), 40);
        let later = Park {
            done_through: 57,
            ..park.clone()
        };
        assert_eq!(later.resume_at(), 58);
    }
}
