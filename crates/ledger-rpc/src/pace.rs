//! The arithmetic of the smooth per-business call budget (decision record 0036): a generic cell
//! rate algorithm (GCRA, computed by the `governor` crate) whose state, the *theoretical arrival
//! time* of the next call, is one number the gate keeps in NATS KV for every replica.
//!
//! **The bound.** With emission interval `T` and tolerance `τ = (burst − 1)·T`, any `n` calls a
//! GCRA lets through satisfy `t_last − t_first ≥ (n − 1)·T − τ = (n − burst)·T`. The gate picks
//! `T = ⌈(window + margin) / (calls − burst + 1)⌉` (whole microseconds, rounded up), so any
//! `calls + 1` admitted calls span at least `window + margin`: no rolling window (of Sage, which
//! sees the calls up to `margin` later or earlier than the gate did) ever holds more than
//! `calls`. The burst is therefore paid for out of the window's budget: a business runs
//! steadily at `calls − burst + 1` calls per `window + margin`, and can spend `burst` calls back
//! to back after a quiet spell.
//!
//! **Pauses.** A 429 from Sage pauses the business until its `Retry-After`: the pause is kept in
//! the same state (`paused_until_ms`), and the arrival time moves past it so that calls resume
//! at the steady pace, without a burst into a Sage that has just refused one.
//!
//! **Precision.** The arrival time and the interval are kept in microseconds. In whole
//! milliseconds a budget of 6,000 calls a minute would round `T` from 10.09 ms up to 11 ms and
//! leave 9 % of the budget unused; at microseconds the rounding costs under 0.01 %.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

/// One business's budget state, as stored (JSON) under its key in the budget bucket. Times are
/// wall-clock time since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredPace")]
pub struct PaceState {
    /// Theoretical arrival time of the next call, in microseconds: a call is allowed from
    /// `tat_us − τ` on.
    pub tat_us: u64,
    /// Until when Sage asked this business to wait (a 429's `Retry-After`), in milliseconds;
    /// 0 when never.
    pub paused_until_ms: u64,
}

/// A stored [`PaceState`] as read: values written before the arrival time was kept in
/// microseconds carry `tat_ms` instead.
#[derive(Deserialize)]
struct StoredPace {
    tat_us: Option<u64>,
    tat_ms: Option<u64>,
    #[serde(default)]
    paused_until_ms: u64,
}

impl From<StoredPace> for PaceState {
    fn from(stored: StoredPace) -> PaceState {
        PaceState {
            tat_us: stored
                .tat_us
                .or(stored.tat_ms.map(|ms| ms.saturating_mul(1_000)))
                .unwrap_or(0),
            paused_until_ms: stored.paused_until_ms,
        }
    }
}

/// What the budget says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The call may go at `at_ms` (now, or a reserved slot at most the hold away) once `state`
    /// is stored.
    Go {
        /// When the call may be sent, ms since the epoch.
        at_ms: u64,
        /// The state to store (compare-and-set) before going.
        state: PaceState,
    },
    /// No call before `retry_after` from now; nothing to store.
    Wait {
        /// Time until the next call would be allowed.
        retry_after: Duration,
    },
}

/// A per-business budget: `calls` in any rolling `window`, spread evenly, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    calls: u32,
    quota: Quota,
    interval_us: u64,
    tolerance_us: u64,
    burst: u32,
}

impl Pace {
    /// The pace of `calls` per rolling `window`, of which up to `burst` may go back to back
    /// (clamped to `1..=calls`), spaced so that a clock difference or delay of up to `margin`
    /// between the gate and Sage still keeps every window of Sage at `calls` or fewer.
    /// `None` when `calls` is 0 (no budget).
    pub fn new(calls: u32, window: Duration, burst: u32, margin: Duration) -> Option<Pace> {
        if calls == 0 {
            return None;
        }
        let burst = burst.clamp(1, calls);
        let span_us = (window + margin).as_micros().max(1) as u64;
        let steady = u64::from(calls - burst + 1);
        let mut pace = Pace::with_interval(span_us.div_ceil(steady), burst);
        pace.calls = calls;
        Some(pace)
    }

    /// A pace with a given emission interval (µs, at least 1) and burst (at least 1).
    fn with_interval(interval_us: u64, burst: u32) -> Pace {
        let interval_us = interval_us.max(1);
        let burst = burst.max(1);
        let quota = Quota::with_period(Duration::from_micros(interval_us))
            .expect("a non-zero period")
            .allow_burst(NonZeroU32::new(burst).expect("burst at least 1"));
        Pace {
            calls: burst,
            quota,
            interval_us,
            tolerance_us: interval_us * u64::from(burst - 1),
            burst,
        }
    }

    /// Time between two calls at the steady pace.
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    /// Calls allowed in any rolling window (the budget).
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Calls that may go back to back after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Decides a call at `now_ms` given the stored `state` (`None`: no call for long). A call
    /// whose slot is at most `hold` away reserves it (the caller waits for it in place);
    /// a later slot answers [`Verdict::Wait`] with the exact time until it.
    pub fn decide(&self, state: Option<PaceState>, now_ms: u64, hold: Duration) -> Verdict {
        let paused_until_ms = state.map_or(0, |s| s.paused_until_ms);
        if paused_until_ms > now_ms {
            return Verdict::Wait {
                retry_after: Duration::from_millis(paused_until_ms - now_ms),
            };
        }
        let tat = state.map(|s| s.tat_us);
        let now_us = now_ms.saturating_mul(1_000);
        let earliest_us = match self.admit(tat, now_us) {
            Ok(tat_us) => {
                return Verdict::Go {
                    at_ms: now_ms,
                    state: PaceState {
                        tat_us,
                        paused_until_ms,
                    },
                }
            }
            Err(earliest_us) => earliest_us,
        };
        let wait = Duration::from_micros(earliest_us - now_us);
        if wait > hold {
            return Verdict::Wait { retry_after: wait };
        }
        match self.admit(tat, earliest_us) {
            // The call leaves at the first whole millisecond of its slot.
            Ok(tat_us) => Verdict::Go {
                at_ms: earliest_us.div_ceil(1_000),
                state: PaceState {
                    tat_us,
                    paused_until_ms,
                },
            },
            // The earliest slot is conforming by definition; answer a wait rather than panic.
            Err(_) => Verdict::Wait { retry_after: wait },
        }
    }

    /// The state after Sage asked (at `now_ms`) for a pause of `retry_after`: nobody calls
    /// before it ends, and calls resume at the steady pace.
    pub fn pause(&self, state: Option<PaceState>, now_ms: u64, retry_after: Duration) -> PaceState {
        let state = state.unwrap_or_default();
        let paused_until_ms = state
            .paused_until_ms
            .max(now_ms + retry_after.as_millis() as u64);
        PaceState {
            tat_us: state
                .tat_us
                .max(paused_until_ms * 1_000 + self.tolerance_us),
            paused_until_ms,
        }
    }

    /// Calls that could go back to back at `now_ms` (0 while paused): what is left of the
    /// budget for now.
    pub fn available(&self, state: Option<PaceState>, now_ms: u64) -> u32 {
        let Some(state) = state else {
            return self.burst;
        };
        if state.paused_until_ms > now_ms {
            return 0;
        }
        // Room left in the tolerance, in whole intervals, plus the call due now.
        let owed = state.tat_us.saturating_sub(now_ms.saturating_mul(1_000));
        if owed > self.tolerance_us {
            return 0;
        }
        (((self.tolerance_us - owed) / self.interval_us) as u32 + 1).min(self.burst)
    }

    /// Calls already reserved ahead of `now_ms` in `state` (slots of the steady pace).
    pub fn reserved(&self, state: PaceState, now_ms: u64) -> u64 {
        state
            .tat_us
            .saturating_sub(now_ms.saturating_mul(1_000))
            .div_ceil(self.interval_us)
    }

    /// One GCRA step at `at_us`: the new arrival time, or the earliest conforming time (µs).
    fn admit(&self, tat_us: Option<u64>, at_us: u64) -> Result<u64, u64> {
        let clock = FakeRelativeClock::default();
        let limiter: RateLimiter<NotKeyed, Cell, FakeRelativeClock, NoOpMiddleware<Nanos>> =
            RateLimiter::new(self.quota, Cell::holding(tat_us), clock.clone());
        clock.advance(Duration::from_micros(at_us));
        match limiter.check() {
            Ok(()) => Ok(limiter.into_state_store().tat_us().unwrap_or(at_us)),
            Err(not_until) => Err(not_until
                .earliest_possible()
                .as_u64()
                .div_ceil(1_000)
                .max(at_us)),
        }
    }
}

/// A state store of one arrival time (nanoseconds since the epoch), loaded from NATS KV for one
/// decision: governor computes, the gate stores the result with a compare-and-set.
#[derive(Debug, Default)]
struct Cell(Mutex<Option<Nanos>>);

impl Cell {
    fn holding(tat_us: Option<u64>) -> Cell {
        Cell(Mutex::new(
            tat_us.map(|us| Nanos::from(Duration::from_micros(us))),
        ))
    }

    fn tat_us(&self) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|n| n.as_u64().div_ceil(1_000))
    }
}

impl StateStore for Cell {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut tat = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (outcome, next) = f(*tat)?;
        *tat = Some(next);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An arbitrary wall-clock origin, so nothing relies on times near zero.
    const T0: u64 = 1_700_000_000_000;

    /// A state whose arrival time is `tat_ms` after `T0`.
    fn tat(tat_ms: u64, paused_until_ms: u64) -> PaceState {
        PaceState {
            tat_us: (T0 + tat_ms) * 1_000,
            paused_until_ms,
        }
    }

    fn go(at_ms: u64, tat_ms: u64) -> Verdict {
        Verdict::Go {
            at_ms: T0 + at_ms,
            state: PaceState {
                tat_us: (T0 + tat_ms) * 1_000,
                paused_until_ms: 0,
            },
        }
    }

    fn wait(ms: u64) -> Verdict {
        Verdict::Wait {
            retry_after: Duration::from_millis(ms),
        }
    }

    #[test]
    fn interval_pays_for_the_burst_and_the_margin() {
        // 10 calls per 10 s, burst 3: 8 steady calls per 10 s, so T = 1250 ms, τ = 2500 ms.
        let pace = Pace::new(10, Duration::from_secs(10), 3, Duration::ZERO).unwrap();
        assert_eq!(pace.interval(), Duration::from_millis(1250));
        assert_eq!(pace.tolerance_us, 2_500_000);
        // 200 a minute, burst 4, 500 ms margin: ⌈60 500 000 / 197⌉ µs = 307 107 µs
        // (307 106.6 rounded up).
        let pace = Pace::new(200, Duration::from_secs(60), 4, Duration::from_millis(500)).unwrap();
        assert_eq!(pace.interval(), Duration::from_micros(307_107));
        // 6,000 a minute, burst 4, 500 ms margin: ⌈60 500 000 / 5 997⌉ µs = 10 089 µs
        // (10 088.4 rounded up), a steady 5 947 calls a minute (99.1 %); in whole
        // milliseconds it would be 11 ms, 5 454 a minute (90.9 %).
        let pace = Pace::new(
            6_000,
            Duration::from_secs(60),
            4,
            Duration::from_millis(500),
        )
        .unwrap();
        assert_eq!(pace.interval(), Duration::from_micros(10_089));
        // No burst: the plain 60 s / calls.
        let pace = Pace::new(240, Duration::from_secs(60), 1, Duration::ZERO).unwrap();
        assert_eq!(pace.interval(), Duration::from_millis(250));
        // A burst larger than the budget is the whole budget: one steady call per window.
        let pace = Pace::new(5, Duration::from_secs(60), 9, Duration::ZERO).unwrap();
        assert_eq!((pace.burst(), pace.interval_us), (5, 60_000_000));
        assert!(Pace::new(0, Duration::from_secs(60), 4, Duration::ZERO).is_none());
    }

    #[test]
    fn arrivals_are_allowed_or_told_how_long_to_wait() {
        // T = 1250 ms, τ = 2500 ms (worked out above). Each row: arrival (ms after T0), the
        // hold the caller accepts, and the verdict worked out by hand.
        let pace = Pace::new(10, Duration::from_secs(10), 3, Duration::ZERO).unwrap();
        let none = Duration::ZERO;
        let table: &[(u64, Duration, Verdict)] = &[
            // First call: TAT = 0 + T.
            (0, none, go(0, 1250)),
            // Burst: TAT 1250 − τ ≤ 0, then 2500 − τ ≤ 0.
            (0, none, go(0, 2500)),
            (0, none, go(0, 3750)),
            // Burst spent: the next slot is 3750 − 2500 = 1250.
            (0, none, wait(1250)),
            (1000, none, wait(250)),
            (1250, none, go(1250, 5000)),
            // Next slot 5000 − 2500 = 2500: 1200 ms away.
            (1300, none, wait(1200)),
            // Within a hold of one interval: the slot at 2500 is reserved, TAT = 2500 + 1250.
            (1300, Duration::from_millis(1250), go(2500, 6250)),
            // Next slot 6250 − 2500 = 3750; a hold of 1 s is too short from 2600.
            (2600, Duration::from_secs(1), wait(1150)),
            // After a quiet spell the burst is back: TAT restarts from the arrival.
            (20_000, none, go(20_000, 21_250)),
            (20_000, none, go(20_000, 22_500)),
            (20_000, none, go(20_000, 23_750)),
            (20_000, none, wait(1250)),
        ];
        let mut state = None;
        for (i, (at, hold, expected)) in table.iter().enumerate() {
            let verdict = pace.decide(state, T0 + at, *hold);
            assert_eq!(verdict, *expected, "row {i}: arrival at {at} ms");
            if let Verdict::Go { state: next, .. } = verdict {
                state = Some(next);
            }
        }
    }

    #[test]
    fn a_pause_stops_every_call_then_resumes_at_the_steady_pace() {
        let pace = Pace::new(10, Duration::from_secs(10), 3, Duration::ZERO).unwrap();
        let state = tat(5000, 0);
        // 429 at 1300 with Retry-After 3 s: paused until 4300; TAT = 4300 + τ = 6800.
        let paused = pace.pause(Some(state), T0 + 1300, Duration::from_secs(3));
        assert_eq!(paused, tat(6800, T0 + 4300));
        assert_eq!(pace.available(Some(paused), T0 + 4000), 0);
        // Even a caller ready to hold gets the pause's exact end.
        assert_eq!(
            pace.decide(Some(paused), T0 + 4000, Duration::from_secs(5)),
            wait(300)
        );
        // At its end one call, then the steady interval (no burst).
        let first = pace.decide(Some(paused), T0 + 4300, Duration::ZERO);
        assert_eq!(
            first,
            Verdict::Go {
                at_ms: T0 + 4300,
                state: tat(8050, T0 + 4300)
            }
        );
        let Verdict::Go { state: after, .. } = first else {
            unreachable!()
        };
        assert_eq!(
            pace.decide(Some(after), T0 + 4300, Duration::ZERO),
            wait(1250)
        );
        // A shorter, later 429 never shortens a pause already recorded.
        let again = pace.pause(Some(paused), T0 + 1400, Duration::from_secs(1));
        assert_eq!(again.paused_until_ms, T0 + 4300);
    }

    #[test]
    fn available_counts_the_burst_left() {
        let pace = Pace::new(10, Duration::from_secs(10), 3, Duration::ZERO).unwrap();
        assert_eq!(pace.available(None, T0), 3);
        let mut state = None;
        for left in [2, 1, 0] {
            let Verdict::Go { state: next, .. } = pace.decide(state, T0, Duration::ZERO) else {
                panic!("the burst allows three calls");
            };
            state = Some(next);
            assert_eq!(pace.available(state, T0), left);
        }
        // One interval later one call is due again.
        assert_eq!(pace.available(state, T0 + 1250), 1);
    }

    /// Arrival times a hungry caller gets: it comes back whenever told, and also goes quiet
    /// now and then so that the burst refills (the worst case for a rolling window).
    fn hungry_caller(pace: &Pace, total: usize, hold: Duration) -> Vec<u64> {
        let mut state = None;
        let mut now = T0;
        let mut calls = Vec::new();
        while calls.len() < total {
            match pace.decide(state, now, hold) {
                Verdict::Go { at_ms, state: next } => {
                    state = Some(next);
                    calls.push(at_ms);
                    // Quiet for a while after every 37th call, just long enough to refill.
                    if calls.len() % 37 == 0 {
                        now = at_ms + 3 * pace.interval_us.div_ceil(1_000);
                    } else {
                        now = now.max(at_ms);
                    }
                }
                Verdict::Wait { retry_after } => {
                    now += (retry_after.as_micros() as u64).div_ceil(1_000)
                }
            }
        }
        calls
    }

    /// The most calls in any rolling window `(t − window, t]`.
    fn busiest(calls: &[u64], window_ms: u64) -> usize {
        let mut first = 0;
        let mut most = 0;
        for (last, &t) in calls.iter().enumerate() {
            while calls[first] + window_ms <= t {
                first += 1;
            }
            most = most.max(last - first + 1);
        }
        most
    }

    #[test]
    fn no_rolling_window_ever_holds_more_than_the_budget() {
        for (calls, burst, margin_ms) in [
            (10, 3, 0),
            (240, 4, 0),
            (200, 4, 500),
            (7, 7, 0),
            (6_000, 4, 500),
        ] {
            let pace = Pace::new(
                calls,
                Duration::from_secs(60),
                burst,
                Duration::from_millis(margin_ms),
            )
            .unwrap();
            for hold in [Duration::ZERO, pace.interval()] {
                let arrivals = hungry_caller(&pace, (2 * calls as usize).max(2000), hold);
                let most = busiest(&arrivals, 60_000 + margin_ms);
                assert!(
                    most <= calls as usize,
                    "{calls}/min burst {burst}: {most} calls in one window"
                );
                // And the budget is used: the busiest window is full.
                assert!(
                    most >= (calls - burst + 1) as usize,
                    "{calls}/min burst {burst}: only {most}"
                );
            }
        }
        // The check can fail: spacing at 60 s / calls and adding the burst on top lets a
        // window hold calls + burst − 1.
        let naive = Pace::with_interval(250_000, 4);
        let most = busiest(&hungry_caller(&naive, 2000, Duration::ZERO), 60_000);
        assert!(most > 240, "{most}");
    }

    #[test]
    fn state_round_trips_as_json_and_reads_older_values() {
        let state = PaceState {
            tat_us: 5_250,
            paused_until_ms: 7,
        };
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(text, r#"{"tat_us":5250,"paused_until_ms":7}"#);
        assert_eq!(serde_json::from_str::<PaceState>(&text).unwrap(), state);
        // Written in milliseconds, with or without a pause.
        assert_eq!(
            serde_json::from_str::<PaceState>(r#"{"tat_ms":5}"#).unwrap(),
            PaceState {
                tat_us: 5_000,
                paused_until_ms: 0
            }
        );
        assert_eq!(
            serde_json::from_str::<PaceState>(r#"{"tat_ms":5,"paused_until_ms":9}"#).unwrap(),
            PaceState {
                tat_us: 5_000,
                paused_until_ms: 9
            }
        );
    }
}
