//! inet and cidr.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{BoxError, Reader};

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

pub(super) fn decode_inet(raw: &[u8], cidr: bool) -> Result<String, BoxError> {
    let mut r = Reader(raw);
    let family = r.take(1)?[0];
    let bits = r.take(1)?[0];
    let _is_cidr = r.take(1)?[0];
    let len = r.take(1)?[0] as usize;
    let addr = r.take(len)?;
    let (ip, full): (IpAddr, u8) = match family {
        PGSQL_AF_INET if len == 4 => (
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            32,
        ),
        PGSQL_AF_INET6 if len == 16 => {
            let octets: [u8; 16] = addr.try_into()?;
            (IpAddr::V6(Ipv6Addr::from(octets)), 128)
        }
        _ => return Err("unknown inet address family".into()),
    };
    Ok(if bits == full && !cidr {
        ip.to_string()
    } else {
        format!("{ip}/{bits}")
    })
}

pub(super) fn encode_inet(
    s: &str,
    cidr: bool,
    out: &mut bytes::BytesMut,
) -> Result<(), &'static str> {
    use bytes::BufMut;
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| "bad prefix length")?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| "not an IP address")?;
    let (family, octets, full): (u8, Vec<u8>, u8) = match ip {
        IpAddr::V4(v4) => (PGSQL_AF_INET, v4.octets().to_vec(), 32),
        IpAddr::V6(v6) => (PGSQL_AF_INET6, v6.octets().to_vec(), 128),
    };
    let bits = bits.unwrap_or(full);
    if bits > full {
        return Err("prefix length too large");
    }
    if cidr {
        // cidr requires the bits right of the mask to be zero.
        for (i, byte) in octets.iter().enumerate() {
            let keep = (usize::from(bits).saturating_sub(i * 8)).min(8);
            let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
            if byte & !mask != 0 {
                return Err("a cidr value has bits set to the right of its mask");
            }
        }
    }
    out.put_u8(family);
    out.put_u8(bits);
    out.put_u8(u8::from(cidr));
    out.put_u8(octets.len() as u8);
    out.put_slice(&octets);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_masks() {
        let mut buf = bytes::BytesMut::new();
        assert!(encode_inet("10.0.0.0/8", true, &mut buf).is_ok());
        assert!(encode_inet("10.0.0.1/8", true, &mut buf).is_err());
        assert!(encode_inet("10.0.0.1/8", false, &mut buf).is_ok());
        assert!(encode_inet("2001:db8::/32", true, &mut buf).is_ok());
        assert!(encode_inet("10.0.0.0/33", false, &mut buf).is_err());
    }
}
