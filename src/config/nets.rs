//! Networks as written in config files: `cidr::parse_net`, plus refusing
//! a CIDR with host bits set. `203.0.113.5/24` is almost always a typo for
//! either the network `203.0.113.0/24` or the one address `203.0.113.5`;
//! silently widening it to the network could let in 255 hosts the author
//! never meant, so the error names both readings.

use ipnet::IpNet;

use clawgate_policy::cidr;

/// One network, refused when its address has bits set beyond the prefix.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "'{s}' has host bits set: did you mean {}? (for the one address write {})",
                net.trunc(),
                net.addr()
            ));
        }
    }
    cidr::parse_net(s)
}

/// A list separated by commas and/or whitespace.
pub fn parse_list(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(parse_net)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_refused_with_the_network_meant() {
        let e = parse_net("203.0.113.5/24").unwrap_err();
        assert!(e.contains("did you mean 203.0.113.0/24?"), "{e}");
        assert!(e.contains("write 203.0.113.5)"), "{e}");
        let e = parse_list("10.0.0.0/8 2001:db8::1/32").unwrap_err();
        assert!(e.contains("did you mean 2001:db8::/32?"), "{e}");
    }

    #[test]
    fn networks_and_single_addresses_still_parse() {
        let nets = parse_list("203.0.113.0/24, 192.0.2.7 ::1/128 0.0.0.0/0").unwrap();
        assert_eq!(nets.len(), 4);
        assert_eq!(nets[1].to_string(), "192.0.2.7/32");
        assert!(parse_net("10.0.0.0/33").is_err());
    }
}
