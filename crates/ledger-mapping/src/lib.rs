//! Pure mapping from Magento snapshots to Sage Business Cloud Accounting v3.1 request bodies.
