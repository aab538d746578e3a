//! How the consumer services turn contract and mapping refusals into the error taxonomy, the
//! same way everywhere so dead letters and audit records carry the same codes.

use ledger_mapping::MappingError;
use ledger_runtime::ProcessError;

/// A contract violation: permanent, naming the first failing field, with every violation in
/// the detail.
pub fn contract_failure(e: ledger_events::ContractError) -> ProcessError {
    ProcessError::Permanent {
        code: "contract.invalid".into(),
        field: e.issues().first().map(|i| i.path.clone()),
        message: e.to_string(),
        detail: serde_json::Value::Array(
            e.issues()
                .iter()
                .map(|i| serde_json::json!({"field": i.path, "reason": i.reason}))
                .collect(),
        ),
    }
}

/// A mapping refusal: `Invalid` is permanent (`mapping.<reason>`); `Skipped` is an outcome,
/// returned as `(reason, detail)` for the caller to record.
pub fn mapping_outcome(e: MappingError) -> Result<(String, String), ProcessError> {
    match e {
        MappingError::Invalid { field, reason } => Err(ProcessError::invalid_field(
            format!("mapping.{reason}"),
            field.clone(),
            format!("{field}: {reason}"),
        )),
        MappingError::Skipped { reason, detail } => Ok((reason, detail)),
    }
}

/// Parses a delivered event against the contract, after checking that it was published on
/// its own merchant's subject (the check every audited handling makes, see
/// [`ledger_runtime::consumer::check_subject_authority`]): an event of merchant A on B's
/// subject is refused, naming `/merchant_id`.
pub fn parse_delivery(
    delivery: &ledger_runtime::consumer::Delivery,
) -> Result<ledger_events::Envelope, ProcessError> {
    ledger_runtime::consumer::check_subject_authority(delivery)?;
    ledger_events::parse(&delivery.payload).map_err(contract_failure)
}
