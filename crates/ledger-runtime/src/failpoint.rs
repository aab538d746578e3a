//! Crash points for the chaos suite.
//!
//! A service's configuration ([`crate::service::RuntimeConfig::failpoints`], environment
//! variable `LEDGER_FAILPOINTS`) may name points with a probability, e.g.
//! `after_sage_write=0.05,before_ack=0.01`; the process then aborts at such a point with that
//! probability, exactly as a SIGKILL would at that moment. Unset in production, a point costs
//! one read of an empty list.
//!
//! This module depends on nothing else of the crate, so the consumer loop and the journal can
//! both mark their points without depending on each other.

use std::sync::RwLock;

/// The installed points and their probabilities.
static POINTS: RwLock<Vec<(String, f64)>> = RwLock::new(Vec::new());

/// Parses a specification `name=probability[,name=probability…]`. An empty specification
/// names no point; a pair without `=` or with a probability outside 0..=1 is refused, naming it.
pub fn parse(spec: &str) -> Result<Vec<(String, f64)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, p) = pair
                .split_once('=')
                .ok_or_else(|| format!("failpoint {pair:?}: expected name=probability"))?;
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("failpoint {pair:?}: probability is not a number"))?;
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "failpoint {pair:?}: probability is not within 0..=1"
                ));
            }
            Ok((name.trim().to_string(), p))
        })
        .collect()
}

/// Installs the points of `spec` for this process (replacing earlier ones); `None` removes them.
pub fn install(spec: Option<&str>) -> Result<(), String> {
    let points = match spec {
        Some(spec) => parse(spec)?,
        None => Vec::new(),
    };
    *POINTS.write().unwrap_or_else(|p| p.into_inner()) = points;
    Ok(())
}

/// The probability installed for `point` (0 when it is not named).
pub fn probability(point: &str) -> f64 {
    POINTS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(name, _)| name == point)
        .map_or(0.0, |(_, p)| *p)
}

/// Aborts the process at `point` with its installed probability.
pub fn hit(point: &str) {
    let probability = probability(point);
    if probability > 0.0 && rand::random::<f64>() < probability {
        eprintln!("failpoint {point}: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_read_and_bad_ones_named() {
        assert_eq!(
            parse("after_sage_write=0.05, before_ack=0.01").unwrap(),
            vec![
                ("after_sage_write".to_string(), 0.05),
                ("before_ack".to_string(), 0.01)
            ]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("before_ack").unwrap_err().contains("before_ack"));
        assert!(parse("before_ack=x").unwrap_err().contains("not a number"));
        assert!(parse("before_ack=2").unwrap_err().contains("0..=1"));
    }

    #[test]
    fn installed_points_have_their_probability() {
        install(Some("unit_test_point=0")).unwrap();
        assert_eq!(probability("unit_test_point"), 0.0);
        assert_eq!(probability("other"), 0.0);
        // Probability 0: never aborts.
        hit("unit_test_point");
        install(None).unwrap();
    }
}
