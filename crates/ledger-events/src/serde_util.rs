//! Small serde adapters for Magento's loose typing (0/1 booleans, ids printed as strings,
//! zone-less UTC timestamps). They are only reached after schema validation, so they accept
//! exactly the forms the JSON Schemas allow.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use std::fmt;

/// Magento booleans: `true`/`false` or `0`/`1`.
pub(crate) mod flag {
    use super::*;

    struct FlagVisitor;

    impl Visitor<'_> for FlagVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean or 0/1")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
            }
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        d.deserialize_any(FlagVisitor)
    }

    pub(crate) fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*v)
    }
}

/// Optional ids that Magento prints either as a number or as a string of digits
/// (`CustomerInterface::default_billing` is a string in REST).
pub(crate) mod opt_id_lenient {
    use super::*;

    struct IdVisitor;

    impl<'de> Visitor<'de> for IdVisitor {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an id as integer or digit string, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(IdVisitor)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_option(IdVisitor)
    }
}

/// Magento timestamps: `"YYYY-MM-DD HH:MM:SS"` in UTC (how REST prints database time), or
/// RFC 3339 with a zone. Written back in Magento's own form so a re-serialised document still
/// looks like what Magento sends.
pub(crate) mod magento_time {
    use super::*;

    pub(crate) fn parse(s: &str) -> Option<DateTime<Utc>> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(dt.with_timezone(&Utc));
        }
        for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
                return Some(naive.and_utc());
            }
        }
        // Zone offsets without a colon (+0100) are allowed by the schema pattern.
        for fmt in ["%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
            if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
                return Some(dt.with_timezone(&Utc));
            }
        }
        None
    }

    pub(crate) fn format(dt: &DateTime<Utc>) -> String {
        dt.format("%Y-%m-%d %H:%M:%S%.f").to_string()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| de::Error::custom(format!("not a Magento timestamp: {s:?}")))
    }

    pub(crate) fn serialize<S: Serializer>(v: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(v))
    }

    /// The same for optional columns (`null` or absent → `None`).
    pub(crate) mod option {
        use super::*;

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => parse(&s)
                    .map(Some)
                    .ok_or_else(|| de::Error::custom(format!("not a Magento timestamp: {s:?}"))),
            }
        }

        pub(crate) fn serialize<S: Serializer>(
            v: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(dt) => s.serialize_str(&format(dt)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::magento_time;
    use chrono::{TimeZone, Utc};

    #[test]
    fn magento_timestamps_are_utc() {
        let want = Utc.with_ymd_and_hms(2017, 8, 21, 22, 36, 2).unwrap();
        assert_eq!(magento_time::parse("2017-08-21 22:36:02"), Some(want));
        assert_eq!(magento_time::parse("2017-08-21T22:36:02Z"), Some(want));
        assert_eq!(magento_time::parse("2017-08-21T23:36:02+01:00"), Some(want));
        assert_eq!(magento_time::parse("2017-08-21 23:36:02+0100"), Some(want));
        assert_eq!(magento_time::parse("21/08/2017"), None);
        assert_eq!(magento_time::format(&want), "2017-08-21 22:36:02");
    }
}
