//! Services: ClusterIP and NodePort allocation on create, kept on update,
//! released on delete.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::Registry;
use crate::resources::ResourceInfo;
use crate::status::ApiError;

/// What a create claimed, to release it if the create fails.
#[derive(Default)]
pub struct Allocated {
    ips: Vec<String>,
    ports: Vec<u16>,
}

fn is_service(r: &ResourceInfo) -> bool {
    r.group.is_empty() && r.kind == "Service"
}

fn service_type(obj: &Value) -> &str {
    obj.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn invalid(field: &str, value: &str, message: &str, name: &str) -> ApiError {
    let text =
        format!("Service \"{name}\" is invalid: {field}: Invalid value: \"{value}\": {message}");
    ApiError::invalid(
        "Service",
        "",
        name,
        text,
        vec![
            json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: \"{value}\": {message}"), "field": field}),
        ],
    )
}

/// The ClusterIP and node ports a Service holds.
fn held(obj: &Value) -> (Vec<String>, Vec<u16>) {
    let ips = obj
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .or_else(|| {
            obj.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(|ip| vec![ip.to_owned()])
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|ip: &String| ip.parse::<Ipv4Addr>().is_ok())
        .collect();
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    (ips, ports)
}

impl Registry {
    pub(super) async fn allocate_for_create(
        &self,
        r: &ResourceInfo,
        obj: &mut Value,
        dry: bool,
    ) -> Result<Allocated, ApiError> {
        let mut claimed = Allocated::default();
        if !is_service(r) {
            return Ok(claimed);
        }
        let name = crate::object::name(obj).unwrap_or_default().to_owned();
        let kind = service_type(obj).to_owned();
        let result = self
            .allocate_service(obj, &kind, &name, dry, &mut claimed)
            .await;
        if result.is_err() {
            self.release(&claimed).await;
        }
        result.map(|()| claimed)
    }

    async fn allocate_service(
        &self,
        obj: &mut Value,
        kind: &str,
        name: &str,
        dry: bool,
        claimed: &mut Allocated,
    ) -> Result<(), ApiError> {
        if kind != "ExternalName" {
            let requested = obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ip = match requested {
                "None" => None,
                "" => Some(if dry {
                    self.allocator.ranges.api_service_ip()
                } else {
                    let ip = self.allocator.allocate_ip().await?;
                    claimed.ips.push(ip.to_string());
                    ip
                }),
                ip => {
                    let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                        invalid(
                            "spec.clusterIPs[0]",
                            ip,
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                            name,
                        )
                    })?;
                    if !self.allocator.ranges.contains_ip(parsed) {
                        return Err(invalid(
                            "spec.clusterIPs",
                            ip,
                            "failed to allocate IP: the provided IP is not in the valid range",
                            name,
                        ));
                    }
                    if !dry {
                        if !self.allocator.claim_ip(parsed).await? {
                            return Err(invalid(
                                "spec.clusterIPs",
                                ip,
                                "failed to allocate IP: provided IP is already allocated",
                                name,
                            ));
                        }
                        claimed.ips.push(ip.to_owned());
                    }
                    Some(parsed)
                }
            };
            match ip {
                Some(ip) => {
                    obj["spec"]["clusterIP"] = json!(ip.to_string());
                    obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
                }
                None => {
                    obj["spec"]["clusterIP"] = json!("None");
                    obj["spec"]["clusterIPs"] = json!(["None"]);
                }
            }
        }
        if matches!(kind, "NodePort" | "LoadBalancer") {
            let count = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..count {
                let requested = obj["spec"]["ports"][i]
                    .get("nodePort")
                    .and_then(Value::as_u64);
                let port = match requested {
                    Some(port) => {
                        let port = u16::try_from(port)
                            .ok()
                            .filter(|p| self.allocator.ranges.node_ports.contains(p))
                            .ok_or_else(|| invalid(&format!("spec.ports[{i}].nodePort"), &port.to_string(), "provided port is not in the valid range. The range of valid ports is 30000-32767", name))?;
                        if !dry {
                            if !self.allocator.claim_port(port).await? {
                                return Err(invalid(
                                    &format!("spec.ports[{i}].nodePort"),
                                    &port.to_string(),
                                    "provided port is already allocated",
                                    name,
                                ));
                            }
                            claimed.ports.push(port);
                        }
                        port
                    }
                    None if dry => 30000,
                    None => {
                        let port = self.allocator.allocate_port().await?;
                        claimed.ports.push(port);
                        port
                    }
                };
                obj["spec"]["ports"][i]["nodePort"] = json!(port);
            }
        }
        Ok(())
    }

    /// An update keeps the addresses a Service holds (clients replacing the
    /// object often omit them); changing them is refused.
    pub(super) fn keep_allocations(
        &self,
        r: &ResourceInfo,
        new: &mut Value,
        old: &Value,
    ) -> Result<(), ApiError> {
        if !is_service(r) || service_type(new) == "ExternalName" {
            return Ok(());
        }
        let name = crate::object::name(old).unwrap_or_default().to_owned();
        let old_ip = old.pointer("/spec/clusterIP").cloned();
        let new_ip = new
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(old_ip) = old_ip {
            if new_ip.is_empty() {
                new["spec"]["clusterIP"] = old_ip.clone();
                if let Some(ips) = old.pointer("/spec/clusterIPs") {
                    new["spec"]["clusterIPs"] = ips.clone();
                }
            } else if Some(new_ip) != old_ip.as_str() {
                return Err(invalid(
                    "spec.clusterIPs[0]",
                    new_ip,
                    "may not change once set",
                    &name,
                ));
            }
        }
        // Node ports stay with their port (matched by port number).
        let old_ports = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in ports {
                if port.get("nodePort").is_some() {
                    continue;
                }
                if let Some(np) = old_ports
                    .iter()
                    .find(|p| p.get("port") == port.get("port"))
                    .and_then(|p| p.get("nodePort"))
                {
                    port["nodePort"] = np.clone();
                }
            }
        }
        Ok(())
    }

    pub(super) async fn release(&self, claimed: &Allocated) {
        self.allocator.release(&claimed.ips, &claimed.ports).await;
    }

    /// Cleanup after an object left the store.
    pub(super) async fn after_delete(&self, r: &ResourceInfo, obj: &Value) {
        if is_service(r) {
            let (ips, ports) = held(obj);
            self.allocator.release(&ips, &ports).await;
        }
    }
}
