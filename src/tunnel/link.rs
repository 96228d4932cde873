//! The mesh link as the kernel holds it: MTU and state from sysfs, the addresses from one
//! netlink dump. Every read-back reads them, so no process is started for it.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The link read back.
pub struct Link {
    /// Administratively up.
    pub up: bool,
    /// MTU.
    pub mtu: u32,
    /// Global-scope addresses with their prefix lengths, sorted.
    pub addresses: Vec<IpNet>,
}

/// At most this many netlink messages are read for one dump (a host with more addresses than
/// this is not one rn expects).
const MAX_MESSAGES: usize = 100_000;

/// Reads the link `name`.
pub fn read(name: &str) -> Result<Link, String> {
    let dir = Path::new("/sys/class/net").join(name);
    let file = |f: &str| {
        let p = dir.join(f);
        std::fs::read_to_string(&p)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let bad = |f: &str, v: &str| format!("{}: unexpected value {v:?}", dir.join(f).display());
    let index = file("ifindex")?;
    let index: u32 = index.parse().map_err(|_| bad("ifindex", &index))?;
    let mtu = file("mtu")?;
    let mtu: u32 = mtu.parse().map_err(|_| bad("mtu", &mtu))?;
    let flags = file("flags")?;
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16)
        .map_err(|_| bad("flags", &flags))?;
    let mut addresses =
        addresses(index).map_err(|e| format!("reading addresses of {name}: {e}"))?;
    addresses.sort();
    Ok(Link {
        // IFF_UP
        up: flags & 1 != 0,
        mtu,
        addresses,
    })
}

/// The global-scope addresses of the link with `index`, by an `RTM_GETADDR` dump.
fn addresses(index: u32) -> Result<Vec<IpNet>, String> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| e.to_string())?;
    socket.bind_auto().map_err(|e| e.to_string())?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| e.to_string())?;
    let mut request = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetAddress(AddressMessage::default())),
    );
    request.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    request.header.sequence_number = 1;
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0).map_err(|e| e.to_string())?;

    let mut out = Vec::new();
    let mut received = vec![0u8; 64 * 1024];
    for _ in 0..MAX_MESSAGES {
        let size = socket
            .recv(&mut &mut received[..], 0)
            .map_err(|e| e.to_string())?;
        let mut offset = 0;
        while offset < size {
            let message: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&received[offset..size])
                    .map_err(|e| format!("netlink: {e}"))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => return Err(format!("netlink: {e}")),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a))
                    if a.header.index == index && a.header.scope == AddressScope::Universe =>
                {
                    out.extend(address(&a));
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
    Err("netlink: the address dump did not end".into())
}

/// The address of one `RTM_NEWADDR`: its local address (on a point-to-point link the other
/// attribute is the peer's), with its prefix length.
fn address(a: &AddressMessage) -> Option<IpNet> {
    let pick = |want_local: bool| {
        a.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(ip) if want_local => Some(*ip),
            AddressAttribute::Address(ip) if !want_local => Some(*ip),
            _ => None,
        })
    };
    let ip: IpAddr = pick(true).or_else(|| pick(false))?;
    IpNet::new(ip, a.header.prefix_len).ok()
}
