//! Name resolution for registry requests, refusing internal addresses: a registry name that
//! resolves to a loopback, link-local (cloud metadata lives there) or unspecified address is
//! not connected to, whatever the allow-list says of the name (a rebinding or poisoned record
//! must not reach the pod's own ports or the node's metadata service). An internal registry is
//! allowed by naming it as such: by address (`127.0.0.1:5000`, never resolved) or as
//! `localhost`, both judged by the allow-list and the redirect rules alone.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{name} resolves only to internal addresses ({addresses}); refused")]
    Internal { name: String, addresses: String },
    #[error("cannot resolve {name}: {source}")]
    Lookup { name: String, source: std::io::Error },
}

/// Loopback, link-local, or unspecified (IPv4, IPv6, and IPv4 mapped into IPv6).
pub fn internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_link_local() || ip.is_unspecified(),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => internal_ip(IpAddr::V4(v4)),
            None => ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// Names that say they are this machine (RFC 6761): what they resolve to is expected.
pub fn names_loopback(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The addresses of `name` that may be connected to.
pub fn usable(name: &str, resolved: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, DnsError> {
    if names_loopback(name) {
        return Ok(resolved);
    }
    let (internal, external): (Vec<_>, Vec<_>) = resolved.into_iter().partition(|a| internal_ip(a.ip()));
    if external.is_empty() && !internal.is_empty() {
        let addresses = internal.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>();
        return Err(DnsError::Internal {
            name: name.to_string(),
            addresses: addresses.join(", "),
        });
    }
    Ok(external)
}

/// The system's resolver, through [`usable`].
#[derive(Debug, Default)]
pub struct Guarded;

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|source| DnsError::Lookup {
                    name: name.clone(),
                    source,
                })?
                .collect();
            let addrs: Addrs = Box::new(usable(&name, resolved)?.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 0)
    }

    #[test]
    fn a_name_that_resolves_only_inside_the_machine_is_refused() {
        for ip in [
            "127.0.0.1",
            "127.0.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let error = usable("registry.example.com", vec![at(ip)]).unwrap_err();
            assert!(
                error.to_string().contains("resolves only to internal addresses"),
                "{ip}: {error}"
            );
        }
    }

    #[test]
    fn internal_addresses_are_dropped_beside_external_ones() {
        let kept = usable("registry.example.com", vec![at("127.0.0.1"), at("10.0.0.7"), at("::1")]).unwrap();
        assert_eq!(kept, [at("10.0.0.7")]);
        let public = vec![at("203.0.113.9"), at("2001:db8::1")];
        assert_eq!(usable("registry.example.com", public.clone()).unwrap(), public);
    }

    #[test]
    fn localhost_is_what_it_says() {
        for name in ["localhost", "LOCALHOST", "localhost.", "registry.localhost"] {
            assert_eq!(
                usable(name, vec![at("127.0.0.1")]).unwrap(),
                [at("127.0.0.1")],
                "{name}"
            );
        }
        assert!(usable("localhost.evil.io", vec![at("127.0.0.1")]).is_err());
    }
}
