//! Tenant-supplied URLs (the `callWebhook` step): checked when an SOP is saved and again,
//! on every address the host name resolves to, right before the call — so an SOP cannot
//! reach the host's own network (loopback, private, link-local, cloud-metadata addresses)
//! by naming it or by a DNS record that changes after the check (the call goes to the very
//! address that was checked). A tenant's `contact.outbound_allow` lists the networks it may
//! reach anyway (an on-premise gateway; the tests' local receivers).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Networks a tenant's calls may reach although they are not public (CIDR blocks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed(Vec<(IpAddr, u8)>);

impl Allowed {
    /// Reads `10.0.0.0/8`-style blocks (a bare address is a block of one); an error names
    /// the position and what is wrong.
    pub fn parse(blocks: &[String]) -> Result<Allowed, (usize, String)> {
        let mut out = Vec::new();
        for (i, block) in blocks.iter().enumerate() {
            let (addr, bits) = match block.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (block.as_str(), None),
            };
            let ip: IpAddr = addr.trim().parse().map_err(|_| {
                (
                    i,
                    format!("`{block}` is not an address or a CIDR block such as 10.0.0.0/8"),
                )
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => match b.trim().parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err((i, format!("`{block}`: the prefix length is 0–{max}"))),
                },
            };
            // an IPv4 block written as IPv6 (`::ffff:10.0.0.0/104`) is the IPv4 block
            let (ip, bits) = match ip {
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                    if bits < 96 {
                        return Err((
                            i,
                            format!("`{block}`: an IPv4-mapped block needs a prefix of 96–128"),
                        ));
                    }
                    (canonical(ip), bits - 96)
                }
                other => (other, bits),
            };
            out.push((ip, bits));
        }
        Ok(Allowed(out))
    }

    /// Whether `ip` is in one of the blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| match (canonical(*net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
                (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
                _ => false,
            })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    a[..whole] == b[..whole] && (rest == 0 || (a[whole] ^ b[whole]) & (0xff_u8 << (8 - rest)) == 0)
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Why the host must not call `ip` on a tenant's behalf, if it must not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() || a == 0 => "an unspecified address",
        _ if ip.is_private() => "a private address",
        _ if ip.is_link_local() => "a link-local address (cloud metadata lives there)",
        _ if a == 100 && (64..128).contains(&b) => "a carrier-grade NAT address",
        _ if ip.is_broadcast() || ip.is_multicast() || a >= 240 => "not a unicast address",
        _ if a == 192 && b == 0 && ip.octets()[2] == 0 => "an IETF protocol address",
        _ if a == 198 && (18..20).contains(&b) => "a benchmarking address",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let first = s[0];
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    Some(match () {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        // IPv4-compatible (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d) forms
        _ if s[..6] == [0; 6] || (s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0) => {
            "an IPv4 address written as IPv6"
        }
        // 6to4 (2002::/16) carries an IPv4 address: judged as that address
        _ if first == 0x2002 && forbidden_v4(embedded(s[1], s[2])).is_some() => {
            "a 6to4 address of a non-public IPv4 address"
        }
        _ if first & 0xffc0 == 0xfec0 => "a site-local address",
        _ if first & 0xfe00 == 0xfc00 => "a unique local (private) address",
        _ if first & 0xffc0 == 0xfe80 => "a link-local address",
        _ if ip.is_multicast() => "not a unicast address",
        _ if first == 0x64 && ip.segments()[1] == 0xff9b => "a NAT64 address",
        _ => return None,
    })
}

/// A checked URL: `http` or `https`, a host, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// The `Host` header: the host (an IPv6 address in brackets) and the port unless it is
    /// the scheme's default.
    pub fn host_header(&self) -> String {
        let name = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.https { 443 } else { 80 } {
            name
        } else {
            format!("{name}:{}", self.port)
        }
    }
}

/// Reads a URL into its parts (scheme `http` or `https`, a host, no credentials) without
/// judging where it points: for the operator's own gateway URL. A tenant's URL goes
/// through [`check`].
pub fn parse(url: &str) -> Result<Target, String> {
    let uri: hyper::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("an http:// or https:// URL".into()),
    };
    let authority = uri.authority().ok_or("a URL with a host")?;
    if authority.as_str().contains('@') {
        return Err("credentials do not belong in the URL".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err("a URL with a host".into());
    }
    Ok(Target {
        https,
        host: host.to_ascii_lowercase(),
        port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
    })
}

/// Checks a tenant-supplied URL without resolving it: [`parse`], then a literal address
/// must be public or allowed, and a name must look public (not `localhost`, `*.local`,
/// `*.internal`, a single label).
pub fn check(url: &str, allowed: &Allowed) -> Result<Target, String> {
    let target = parse(url)?;
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        refuse(ip, allowed)?;
    } else {
        let name = target.host.trim_end_matches('.');
        // `127.1`, `0x7f.1`, `2130706433`: addresses in other notations, never a public name
        let numeric = name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"));
        let local = numeric
            || !name.contains('.')
            || [".localhost", ".local", ".internal", ".lan", ".home.arpa"]
                .iter()
                .any(|suffix| name.ends_with(suffix));
        if local {
            return Err(format!(
                "`{}` is not a public host name (name the address; contact.outbound_allow may allow it)",
                target.host
            ));
        }
    }
    Ok(target)
}

fn refuse(ip: IpAddr, allowed: &Allowed) -> Result<(), String> {
    match forbidden(ip) {
        Some(why) if !allowed.contains(ip) => Err(format!(
            "{ip} is {why}: the host does not call it for a tenant (unless contact.outbound_allow lists it)"
        )),
        _ => Ok(()),
    }
}

/// Why a call was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCalled {
    /// The name did not resolve (now): worth another try later.
    Unresolved(String),
    /// The address is one the host does not call for a tenant: final.
    Forbidden(String),
}

/// Resolves the target's host and checks every address against the policy (`None`: the
/// operator's own URL, not checked); the call must go to the address returned (never
/// resolve again: the answer could change in between).
pub async fn resolve(target: &Target, allowed: Option<&Allowed>) -> Result<SocketAddr, NotCalled> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| NotCalled::Unresolved(format!("cannot resolve {}: {e}", target.host)))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| NotCalled::Unresolved(format!("{} has no address", target.host)))?;
    if let Some(allowed) = allowed {
        for a in &addrs {
            refuse(a.ip(), allowed).map_err(NotCalled::Forbidden)?;
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(blocks: &[&str]) -> Allowed {
        Allowed::parse(&blocks.iter().map(|b| b.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:8080/x",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://localhost:3000/",
            "http://api.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://intranet/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::127.0.0.1]/",
            "http://[2002:c0a8:0101::1]/",
            "http://[fec0::1]/",
        ] {
            assert!(
                check(url, &Allowed::default()).is_err(),
                "{url} must be refused"
            );
        }
    }

    #[test]
    fn public_urls_pass_and_keep_their_parts() {
        let t = check("https://hooks.example.com/crm?x=1", &Allowed::default()).unwrap();
        assert_eq!(
            t,
            Target {
                https: true,
                host: "hooks.example.com".into(),
                port: 443,
                path: "/crm?x=1".into()
            }
        );
        assert!(check("http://93.184.216.34:8080/", &Allowed::default()).is_ok());
        assert!(check("http://[2606:4700::1111]/", &Allowed::default()).is_ok());
        assert!(check("ftp://example.com/", &Allowed::default()).is_err());
        assert!(check("http://user:pw@example.com/", &Allowed::default()).is_err());
    }

    #[test]
    fn the_allow_list_opens_exactly_its_blocks() {
        let a = allowed(&["127.0.0.1", "10.20.0.0/16"]);
        assert!(check("http://127.0.0.1:9000/", &a).is_ok());
        assert!(check("http://10.20.3.4/", &a).is_ok());
        assert!(check("http://10.21.0.1/", &a).is_err());
        assert!(check("http://127.0.0.2/", &a).is_err());
        assert!(Allowed::parse(&["10.0.0.0/33".into()]).is_err());
        // an IPv4 block written as IPv6 is the IPv4 block (and does not panic)
        let mapped = allowed(&["::ffff:10.0.0.5", "::ffff:10.9.0.0/112"]);
        assert!(check("http://10.0.0.5/", &mapped).is_ok());
        assert!(check("http://10.9.3.4/", &mapped).is_ok());
        assert!(check("http://10.0.0.6/", &mapped).is_err());
        assert!(Allowed::parse(&["::ffff:10.0.0.0/64".into()]).is_err());
        assert!(Allowed::parse(&["ten".into()]).is_err());
    }

    #[tokio::test]
    async fn names_are_checked_on_what_they_resolve_to() {
        assert!(check("http://localhost.:9/", &Allowed::default()).is_err());
        let t = Target {
            https: false,
            host: "localhost".into(),
            port: 9,
            path: "/".into(),
        };
        let refused = resolve(&t, Some(&Allowed::default())).await.unwrap_err();
        assert!(
            matches!(&refused, NotCalled::Forbidden(m) if m.contains("loopback")),
            "{refused:?}"
        );
        let ok = resolve(&t, Some(&allowed(&["127.0.0.1", "::1"])))
            .await
            .unwrap();
        assert!(ok.ip().is_loopback());
    }
}
