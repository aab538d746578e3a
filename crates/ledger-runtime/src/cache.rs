//! Bounded in-memory caches: a service's memory does not grow with the number of merchants
//! (or customers) it has seen.
//!
//! Every cache a service keeps per merchant (tokens, settings, Sage's open period, reference
//! accounts) or per customer (known Sage contacts) is a [`Lru`] of a fixed capacity: when it
//! is full, the entry used longest ago is dropped and is simply read again when it is next
//! needed (one request to its owner). The capacities are sized so that the merchants active
//! at the same time fit.

/// A map of bounded size that drops the entry used longest ago when full.
pub type Lru<K, V> = hashlink::LruCache<K, V>;

/// Entries of a cache keyed by merchant.
pub const MERCHANT_ENTRIES: usize = 1_024;

/// Entries of a cache keyed by customer (or anything finer than a merchant).
pub const CUSTOMER_ENTRIES: usize = 8_192;

/// An empty cache keyed by merchant ([`MERCHANT_ENTRIES`]).
pub fn per_merchant<K: Eq + std::hash::Hash, V>() -> Lru<K, V> {
    Lru::new(MERCHANT_ENTRIES)
}

/// An empty cache keyed by customer ([`CUSTOMER_ENTRIES`]).
pub fn per_customer<K: Eq + std::hash::Hash, V>() -> Lru<K, V> {
    Lru::new(CUSTOMER_ENTRIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_drops_the_entry_used_longest_ago() {
        let mut cache: Lru<&str, u32> = Lru::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        // Reading "a" makes "b" the oldest.
        assert_eq!(cache.get(&"a"), Some(&1));
        cache.insert("c", 3);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&"b"), None);
        assert_eq!(cache.get(&"a"), Some(&1));
        assert_eq!(cache.get(&"c"), Some(&3));
    }
}
