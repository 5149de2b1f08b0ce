//! Resource quantities as the scheduler sums them: milli-units, absent or
//! invalid counting as zero.

pub use skiff_apimachinery::quantity::parse_milli;

/// The milli-value of an optional quantity (absent or invalid → 0).
pub fn milli(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i128 {
    q.and_then(|q| parse_milli(&q.0)).unwrap_or(0)
}
