//! Markers that travel with one request or its answer between the accept loop, the call
//! counter and the handlers. Kept apart from both so that neither depends on the other.

use std::sync::Arc;
use tokio::sync::Notify;

/// Lets a handler close its own connection without answering (the `timeout`
/// fault). Inserted into every request by the accept loop.
#[derive(Clone)]
pub(crate) struct ConnKill(pub Arc<Notify>);

/// Business a call was attributed to, passed from handlers to the call
/// counter through response extensions.
#[derive(Debug, Clone)]
pub(crate) struct CallBusiness(pub String);
