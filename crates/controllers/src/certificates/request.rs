//! What a PKCS#10 request asks for, and upstream's shape rules for
//! kubelet certificates (which approver and signer both enforce).

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// The requested subject and names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requested {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub emails: Vec<String>,
    pub uris: Vec<String>,
}

/// Why a request is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the request is not a PEM certificate request")]
    NotPem,
    #[error("the certificate request cannot be parsed or its signature is wrong")]
    Unparsable,
    #[error("{0}")]
    Shape(String),
}

/// The DER inside the PEM of `spec.request`.
pub fn der_of(pem: &[u8]) -> Result<Vec<u8>, RequestError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| RequestError::NotPem)?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(RequestError::NotPem);
    }
    Ok(block.contents)
}

/// Parses (and checks the signature of) a request.
pub fn parse(pem: &[u8]) -> Result<Requested, RequestError> {
    let der = der_of(pem)?;
    let (_, csr) =
        X509CertificationRequest::from_der(&der).map_err(|_| RequestError::Unparsable)?;
    csr.verify_signature()
        .map_err(|_| RequestError::Unparsable)?;
    let subject = &csr.certification_request_info.subject;
    let mut out = Requested {
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned(),
        organizations: subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect(),
        ..Requested::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => out.dns_names.push((*d).to_owned()),
                    GeneralName::RFC822Name(e) => out.emails.push((*e).to_owned()),
                    GeneralName::URI(u) => out.uris.push((*u).to_owned()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => out.ips.push(IpAddr::from(
                            <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                        )),
                        16 => out.ips.push(IpAddr::from(
                            <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                        )),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

fn shape(message: impl Into<String>) -> RequestError {
    RequestError::Shape(message.into())
}

fn usages_within(
    usages: &[String],
    allowed: &[&str],
    required: &[&str],
) -> Result<(), RequestError> {
    if let Some(u) = usages.iter().find(|u| !allowed.contains(&u.as_str())) {
        return Err(shape(format!("usage {u:?} is not allowed")));
    }
    if let Some(r) = required.iter().find(|r| !usages.iter().any(|u| u == *r)) {
        return Err(shape(format!("usage {r:?} is required")));
    }
    Ok(())
}

/// Upstream's `ValidateKubeletClientCSR`: `system:node:<name>` in exactly
/// `system:nodes`, no alternative names, client usages only.
pub fn check_kubelet_client(r: &Requested, usages: &[String]) -> Result<(), RequestError> {
    if r.organizations != ["system:nodes"] {
        return Err(shape("subject organization is not system:nodes"));
    }
    if !r.common_name.starts_with("system:node:") || r.common_name.len() == "system:node:".len() {
        return Err(shape(
            "subject common name does not begin with system:node:",
        ));
    }
    if !(r.dns_names.is_empty() && r.ips.is_empty() && r.emails.is_empty() && r.uris.is_empty()) {
        return Err(shape("subjectAltNames are not allowed"));
    }
    usages_within(
        usages,
        &["digital signature", "key encipherment", "client auth"],
        &["digital signature", "client auth"],
    )
}

/// Upstream's `ValidateKubeletServingCSR`: `system:node:<name>` in
/// `system:nodes`, DNS names and IPs only, server usages.
pub fn check_kubelet_serving(r: &Requested, usages: &[String]) -> Result<(), RequestError> {
    if r.organizations != ["system:nodes"] {
        return Err(shape("subject organization is not system:nodes"));
    }
    if !r.common_name.starts_with("system:node:") || r.common_name.len() == "system:node:".len() {
        return Err(shape(
            "subject common name does not begin with system:node:",
        ));
    }
    if r.dns_names.is_empty() && r.ips.is_empty() {
        return Err(shape("DNS or IP subjectAltName is required"));
    }
    if !(r.emails.is_empty() && r.uris.is_empty()) {
        return Err(shape("Email and URI subjectAltNames are not allowed"));
    }
    usages_within(
        usages,
        &["digital signature", "key encipherment", "server auth"],
        &["server auth"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: &str, orgs: &[&str], sans: Vec<String>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        params
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
            .into_bytes()
    }

    fn usages(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kubelet_client_requests() {
        let good = parse(&csr("system:node:a", &["system:nodes"], vec![])).unwrap();
        assert_eq!(good.common_name, "system:node:a");
        let client = usages(&["digital signature", "client auth"]);
        assert!(check_kubelet_client(&good, &client).is_ok());
        assert!(
            check_kubelet_client(&good, &usages(&["digital signature", "server auth"])).is_err()
        );
        let admin = parse(&csr("system:node:a", &["system:masters"], vec![])).unwrap();
        assert!(check_kubelet_client(&admin, &client).is_err());
        let alice = parse(&csr("alice", &["system:nodes"], vec![])).unwrap();
        assert!(check_kubelet_client(&alice, &client).is_err());
        let named = parse(&csr("system:node:a", &["system:nodes"], vec!["a".into()])).unwrap();
        assert!(check_kubelet_client(&named, &client).is_err());
    }

    #[test]
    fn kubelet_serving_requests() {
        let r = parse(&csr(
            "system:node:a",
            &["system:nodes"],
            vec!["a".into(), "10.0.0.7".into()],
        ))
        .unwrap();
        assert_eq!(r.dns_names, ["a"]);
        assert_eq!(r.ips, [IpAddr::from([10, 0, 0, 7])]);
        let serving = usages(&["digital signature", "key encipherment", "server auth"]);
        assert!(check_kubelet_serving(&r, &serving).is_ok());
        assert!(check_kubelet_serving(&r, &usages(&["client auth"])).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse(b"hello"), Err(RequestError::NotPem));
    }
}
