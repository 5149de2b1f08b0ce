//! The CA pin of the join flow, in kubeadm's format: `sha256:` and the hex
//! SHA-256 of the CA certificate's SubjectPublicKeyInfo.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The pin of the first certificate in `ca_pem`.
pub fn of_pem(ca_pem: &str) -> Option<String> {
    let der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256:{hex}"))
}

/// Whether `pin` (as typed: `sha256:<hex>`, any case) matches `ca_pem`.
pub fn matches(pin: &str, ca_pem: &str) -> bool {
    of_pem(ca_pem).is_some_and(|actual| actual.eq_ignore_ascii_case(pin.trim()))
}
