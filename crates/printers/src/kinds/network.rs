//! Services and networking: services, endpoints, endpoint slices,
//! ingresses, ingress classes, network policies, service CIDRs and IP
//! addresses.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::Printer;
use crate::column::{AGE, Column, NAME};
use crate::duration::age;
use crate::format::{join, label_selector, labels, list_with_more};
use crate::value::{arr_at, at, int_at, name, non_empty, obj_at, opt_int, opt_str, str_at};

pub(crate) const SERVICE: Printer = Printer::new(
    &[
        NAME,
        Column::string(
            "Type",
            "How the service is exposed (ClusterIP, NodePort, ...).",
        ),
        Column::string("Cluster-IP", "The service's virtual IP inside the cluster."),
        Column::string(
            "External-IP",
            "Addresses the service is reachable at from outside.",
        ),
        Column::string("Port(s)", "Service ports, with node ports."),
        AGE,
        Column::string(
            "Selector",
            "Labels of the pods the service sends traffic to.",
        )
        .wide(),
    ],
    service,
);

/// Sorted, de-duplicated load-balancer ingress points (IP, else hostname).
fn load_balancer_ingress(status: Option<&Value>) -> String {
    let points: BTreeSet<&str> = status
        .map(|s| arr_at(s, &["ingress"]))
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| non_empty(i, &["ip"]).or_else(|| non_empty(i, &["hostname"])))
        .collect();
    join(points, ",")
}

fn external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr_at(svc, &["spec", "externalIPs"])
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    match str_at(svc, &["spec", "type"]) {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_ingress(at(svc, &["status", "loadBalancer"]));
            if !external.is_empty() {
                let mut all: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    all.extend(lb.split(','));
                }
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_owned()
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

fn ports(svc: &Value) -> String {
    let ports = join(
        arr_at(svc, &["spec", "ports"]).iter().map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = str_at(p, &["protocol"]);
            match int_at(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        }),
        ",",
    );
    if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports
    }
}

fn service(svc: &Value, now: Timestamp) -> Vec<Value> {
    // `clusterIPs[0]`; a bare `clusterIP` counts too, as API defaulting
    // copies it into `clusterIPs`.
    let cluster_ip = arr_at(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| non_empty(svc, &["spec", "clusterIP"]))
        .unwrap_or("<none>");
    vec![
        name(svc).into(),
        str_at(svc, &["spec", "type"]).into(),
        cluster_ip.into(),
        external_ip(svc).into(),
        ports(svc).into(),
        age(svc, now).into(),
        labels(obj_at(svc, &["spec", "selector"])).into(),
    ]
}

pub(crate) const ENDPOINTS: Printer = Printer::new(
    &[
        NAME,
        Column::string("Endpoints", "Addresses and ports of the ready endpoints."),
        AGE,
    ],
    endpoints,
);

/// `host:port`, bracketing IPv6 hosts like Go's `net.JoinHostPort`.
fn host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn format_endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = arr_at(subset, &["addresses"]);
        let ports = arr_at(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, &["ip"]).to_owned());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(host_port(str_at(a, &["ip"]), int_at(port, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count.saturating_sub(MAX))
    } else {
        ret
    }
}

fn endpoints(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        format_endpoints(obj).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const ENDPOINT_SLICE: Printer = Printer::new(
    &[
        NAME,
        Column::string("AddressType", "IPv4, IPv6 or FQDN."),
        Column::string("Ports", "Port numbers of the slice."),
        Column::string("Endpoints", "Addresses of the slice's endpoints."),
        AGE,
    ],
    endpoint_slice,
);

fn endpoint_slice(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let all_ports = arr_at(obj, &["ports"]);
    let ports: Vec<String> = all_ports
        .iter()
        .take(MAX)
        .map(|p| match (opt_int(p, &["port"]), opt_str(p, &["name"])) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => "*".to_owned(),
        })
        .collect();
    let addresses: Vec<&str> = arr_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| arr_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or(""))
        .collect();
    let shown: Vec<String> = addresses
        .iter()
        .take(MAX)
        .map(|a| (*a).to_owned())
        .collect();
    vec![
        name(obj).into(),
        str_at(obj, &["addressType"]).into(),
        list_with_more(&ports, all_ports.len(), MAX).into(),
        list_with_more(&shown, addresses.len(), MAX).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const INGRESS: Printer = Printer::new(
    &[
        NAME,
        Column::string("Class", "The IngressClass handling this ingress."),
        Column::string("Hosts", "Hosts the ingress rules match."),
        Column::string(
            "Address",
            "Addresses of the load balancer serving the ingress.",
        ),
        Column::string("Ports", "Ports the ingress listens on (443 with TLS)."),
        AGE,
    ],
    ingress,
);

fn ingress_hosts(obj: &Value) -> String {
    const MAX: usize = 3;
    let rules = arr_at(obj, &["spec", "rules"]);
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        if let Some(host) = non_empty(rule, &["host"]) {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_owned();
    }
    let ret = hosts.join(",");
    if more {
        format!("{ret} + {} more...", rules.len().saturating_sub(MAX))
    } else {
        ret
    }
}

fn ingress(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = if arr_at(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj).into(),
        opt_str(obj, &["spec", "ingressClassName"])
            .unwrap_or("<none>")
            .into(),
        ingress_hosts(obj).into(),
        load_balancer_ingress(at(obj, &["status", "loadBalancer"])).into(),
        ports.into(),
        age(obj, now).into(),
    ]
}

pub(crate) const INGRESS_CLASS: Printer = Printer::new(
    &[
        NAME,
        Column::string("Controller", "The controller that implements this class."),
        Column::string(
            "Parameters",
            "Resource holding extra configuration for the class.",
        ),
        AGE,
    ],
    ingress_class,
);

fn ingress_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match at(obj, &["spec", "parameters"]) {
        None => "<none>".to_owned(),
        Some(p) => {
            let mut s = str_at(p, &["kind"]).to_owned();
            if let Some(group) = opt_str(p, &["apiGroup"]) {
                s.push('.');
                s.push_str(group);
            }
            format!("{s}/{}", str_at(p, &["name"]))
        }
    };
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "controller"]).into(),
        parameters.into(),
        age(obj, now).into(),
    ]
}

pub(crate) const NETWORK_POLICY: Printer = Printer::new(
    &[
        NAME,
        Column::string("Pod-Selector", "Pods the policy applies to."),
        AGE,
    ],
    network_policy,
);

fn network_policy(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        label_selector(at(obj, &["spec", "podSelector"])).into(),
        age(obj, now).into(),
    ]
}

pub(crate) const SERVICE_CIDR: Printer = Printer::new(
    &[
        NAME,
        Column::string("CIDRs", "Ranges service IPs are allocated from."),
        AGE,
    ],
    service_cidr,
);

fn service_cidr(obj: &Value, now: Timestamp) -> Vec<Value> {
    let cidrs = join(
        arr_at(obj, &["spec", "cidrs"])
            .iter()
            .map(|c| c.as_str().unwrap_or("")),
        ",",
    );
    vec![name(obj).into(), cidrs.into(), age(obj, now).into()]
}

pub(crate) const IP_ADDRESS: Printer = Printer::new(
    &[
        NAME,
        Column::string("ParentRef", "The object this IP address is allocated to."),
    ],
    ip_address,
);

fn ip_address(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parent = match at(obj, &["spec", "parentRef"]) {
        None => "<none>".to_owned(),
        Some(p) => {
            let resource = str_at(p, &["resource"]);
            let mut s = match str_at(p, &["group"]) {
                "" => resource.to_lowercase(),
                g => format!("{resource}.{g}").to_lowercase(),
            };
            if let Some(ns) = non_empty(p, &["namespace"]) {
                s.push('/');
                s.push_str(ns);
            }
            format!("{s}/{}", str_at(p, &["name"]))
        }
    };
    // Upstream declares two columns but prints a third (AGE) cell; kubectl
    // ignores cells beyond the columns, so we do the same.
    vec![name(obj).into(), parent.into(), age(obj, now).into()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn node_port_service() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-06-01T09:30:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                "selector": {"app": "web"},
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP"}]}
        });
        assert_eq!(
            service(&svc, now()),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.12.34"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("150m"),
                json!("app=web")
            ]
        );
    }

    #[test]
    fn cluster_ip_and_headless() {
        let svc = json!({"metadata": {"name": "kubernetes"},
            "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.1"],
                "ports": [{"port": 443, "protocol": "TCP"}]}});
        let r = service(&svc, now());
        assert_eq!(r[2], json!("10.96.0.1"));
        assert_eq!(r[3], json!("<none>"));
        assert_eq!(r[4], json!("443/TCP"));
        assert_eq!(r[6], json!("<none>"));
        let headless = json!({"metadata": {"name": "db"},
            "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}});
        let r = service(&headless, now());
        assert_eq!(r[2], json!("None"));
        assert_eq!(r[4], json!("<none>"));
    }

    #[test]
    fn load_balancer_external_ips() {
        let pending = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(external_ip(&pending), "<pending>");
        let ready = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer",
            "externalIPs": ["192.0.2.9"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(external_ip(&ready), "203.0.113.7,lb.example.com,192.0.2.9");
        let ext = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        assert_eq!(external_ip(&ext), "db.example.com");
    }

    #[test]
    fn endpoints_with_more() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
            "ports": [{"port": 8080}]}]});
        assert_eq!(
            format_endpoints(&ep),
            "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more..."
        );
        assert_eq!(format_endpoints(&json!({})), "<none>");
    }

    #[test]
    fn endpoint_slice_row() {
        let es = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
        let r = endpoint_slice(&es, now());
        assert_eq!(r[1], json!("IPv4"));
        assert_eq!(r[2], json!("80,metrics"));
        assert_eq!(r[3], json!("10.0.0.1,10.0.0.2"));
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
        assert_eq!(endpoint_slice(&empty, now())[2], json!("<unset>"));
    }

    #[test]
    fn ingress_row() {
        let ing = json!({"metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}, {"host": "c.example.com"},
                    {"host": "d.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        let r = ingress(&ing, now());
        assert_eq!(r[1], json!("nginx"));
        assert_eq!(
            r[2],
            json!("a.example.com,b.example.com,c.example.com + 2 more...")
        );
        assert_eq!(r[3], json!("192.0.2.1"));
        assert_eq!(r[4], json!("80, 443"));
        let bare = json!({"metadata": {"name": "x"}, "spec": {}});
        let r = ingress(&bare, now());
        assert_eq!(r[1], json!("<none>"));
        assert_eq!(r[2], json!("*"));
        assert_eq!(r[3], json!(""));
        assert_eq!(r[4], json!("80"));
    }

    #[test]
    fn ingress_class_and_policy() {
        let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
        let r = ingress_class(&ic, now());
        assert_eq!(r[1], json!("k8s.io/ingress-nginx"));
        assert_eq!(r[2], json!("IngressParameters.k8s.example.com/p"));
        let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        assert_eq!(network_policy(&np, now())[1], json!("<none>"));
    }
}
