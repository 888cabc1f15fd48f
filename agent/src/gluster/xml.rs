//! Pure parsers of `gluster --xml` output (peer status, pool list, volume info, volume status
//! [detail], volume get; heal info is `super::heal`'s). No I/O: tested against XML captured from the
//! real gluster 10.3 (`fixtures/`, made by `fixtures/capture.sh`).

use std::collections::{BTreeMap, BTreeSet};

use quick_xml::events::Event;
use quick_xml::Reader;

/// Why gluster's output could not be read, or what gluster said went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("unreadable XML: {0}")]
    Malformed(String),
    #[error("XML lacks <{0}>")]
    Missing(&'static str),
    /// `opRet` was not 0: gluster's own message (`opErrstr`, or `output` when that is empty).
    #[error("{message}")]
    Gluster { op_errno: i64, message: String },
}

/// One XML element: attributes, concatenated text and child elements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the child `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The child `name` parsed as a number; `None` if absent or not a number (e.g. `N/A`, `-`).
    fn num_of<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.text_of(name)?.parse().ok()
    }

    /// The element at `path` below this one.
    pub fn find(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }
}

/// Parses a whole document into its root element.
pub fn parse_tree(xml: &str) -> Result<Element, XmlError> {
    let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader.read_event().map_err(|e| bad(&e))?;
        match event {
            Event::Start(e) => stack.push(start_element(&e).map_err(|e| bad(&e))?),
            Event::Empty(e) => {
                let el = start_element(&e).map_err(|e| bad(&e))?;
                stack.last_mut().expect("root").children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().expect("balanced by the reader");
                stack.last_mut().ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?.children.push(el);
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(|e| bad(&e))?;
                stack.last_mut().expect("root").text.push_str(&text);
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| bad(&e))?;
                stack.last_mut().expect("root").text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| bad(&e))?;
                        quick_xml::escape::unescape(&format!("&{name};")).map_err(|e| bad(&e))?.into_owned()
                    }
                };
                stack.last_mut().expect("root").text.push_str(&resolved);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if stack.len() != 1 {
        return Err(XmlError::Malformed("unclosed elements at end of document".into()));
    }
    stack.pop().and_then(|doc| doc.children.into_iter().next()).ok_or(XmlError::Missing("root element"))
}

fn start_element(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, quick_xml::Error> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(quick_xml::Error::from)?;
        attrs.push((String::from_utf8_lossy(attr.key.as_ref()).into_owned(), attr.unescape_value()?.into_owned()));
    }
    Ok(Element { name, attrs, text: String::new(), children: Vec::new() })
}

/// Parses a `<cliOutput>` document and fails with gluster's message unless `opRet` is 0.
pub fn cli_output(xml: &str) -> Result<Element, XmlError> {
    let root = parse_tree(xml)?;
    if root.name != "cliOutput" {
        return Err(XmlError::Missing("cliOutput"));
    }
    let op_ret: i64 = root.num_of("opRet").ok_or(XmlError::Missing("opRet"))?;
    if op_ret != 0 {
        let op_errno = root.num_of("opErrno").unwrap_or(0);
        let message = [root.text_of("opErrstr"), root.text_of("output")]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .unwrap_or("gluster reported an error without a message")
            .to_owned();
        return Err(XmlError::Gluster { op_errno, message });
    }
    Ok(root)
}

/// A member of the trusted pool (`peer status` or `pool list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub uuid: String,
    /// The name glusterd shows first.
    pub hostname: String,
    /// Every name glusterd knows the peer by (including `hostname`).
    pub names: Vec<String>,
    pub connected: bool,
    /// e.g. "Peer in Cluster", "Peer Rejected"; empty for the local node in `pool list`.
    pub state: String,
    /// The local node (`pool list` shows it as `localhost`).
    pub is_local: bool,
}

impl PeerInfo {
    pub fn known_as(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// `Peer in Cluster` and connected: what a probe waits for.
    pub fn in_cluster(&self) -> bool {
        self.connected && self.state == "Peer in Cluster"
    }

    /// gluster's own wording, e.g. `Peer in Cluster (Connected)`.
    pub fn describe(&self) -> String {
        let conn = if self.connected { "Connected" } else { "Disconnected" };
        format!("{} ({conn})", if self.state.is_empty() { "local" } else { &self.state })
    }
}

/// Peers from `peer status` (other nodes only) or `pool list` (all nodes, local = localhost).
pub fn peers(root: &Element) -> Result<Vec<PeerInfo>, XmlError> {
    let status = root.child("peerStatus").ok_or(XmlError::Missing("peerStatus"))?;
    status
        .children("peer")
        .map(|p| {
            let hostname = p.text_of("hostname").ok_or(XmlError::Missing("hostname"))?.to_owned();
            let mut names: Vec<String> = p
                .child("hostnames")
                .map(|h| h.children("hostname").map(|n| n.text.trim().to_owned()).collect())
                .unwrap_or_default();
            if !names.contains(&hostname) {
                names.insert(0, hostname.clone());
            }
            let state = p.text_of("stateStr").unwrap_or_default().to_owned();
            Ok(PeerInfo {
                uuid: p.text_of("uuid").ok_or(XmlError::Missing("uuid"))?.to_owned(),
                is_local: hostname == "localhost" && state.is_empty(),
                hostname,
                names,
                connected: p.text_of("connected") == Some("1"),
                state,
            })
        })
        .collect()
}

/// One brick as `volume info` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrickInfo {
    pub host: String,
    pub path: String,
    pub host_uuid: String,
    pub is_arbiter: bool,
}

impl BrickInfo {
    pub fn spec(&self) -> String {
        format!("{}:{}", self.host, self.path)
    }
}

/// One volume as `volume info` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    /// The volume id, which every brick root carries as `trusted.glusterfs.volume-id`.
    pub id: String,
    /// "Created", "Started", "Stopped".
    pub status: String,
    /// gluster's typeStr, e.g. "Replicate", "Distributed-Replicate", "Disperse".
    pub type_str: String,
    pub dist_count: u32,
    pub replica: u32,
    pub arbiter: u32,
    pub disperse: u32,
    pub redundancy: u32,
    pub bricks: Vec<BrickInfo>,
    /// Reconfigured options (those set on the volume, including gluster's own at create).
    pub options: BTreeMap<String, String>,
}

impl VolumeInfo {
    pub fn started(&self) -> bool {
        self.status == "Started"
    }

    /// Whether self-heal applies (replicate, arbiter, disperse).
    pub fn heals(&self) -> bool {
        self.replica > 1 || self.disperse > 0
    }
}

/// Splits `host:/path` at the first `:/`.
pub fn split_brick(spec: &str) -> Option<(&str, &str)> {
    let at = spec.find(":/")?;
    Some((&spec[..at], &spec[at + 1..]))
}

/// Volumes from `volume info [VOL]`.
pub fn volumes(root: &Element) -> Result<Vec<VolumeInfo>, XmlError> {
    let vols = root.find(&["volInfo", "volumes"]).ok_or(XmlError::Missing("volInfo/volumes"))?;
    vols.children("volume")
        .map(|v| {
            let count = |name: &'static str| v.num_of::<u32>(name).ok_or(XmlError::Missing(name));
            let bricks = v
                .child("bricks")
                .map(|b| {
                    b.children("brick")
                        .map(|brick| {
                            let spec = brick.text_of("name").unwrap_or(brick.text.trim());
                            let (host, path) = split_brick(spec).ok_or(XmlError::Missing("brick host:/path"))?;
                            Ok(BrickInfo {
                                host: host.to_owned(),
                                path: path.to_owned(),
                                host_uuid: brick.text_of("hostUuid").unwrap_or_default().to_owned(),
                                is_arbiter: brick.text_of("isArbiter") == Some("1"),
                            })
                        })
                        .collect::<Result<Vec<_>, XmlError>>()
                })
                .transpose()?
                .unwrap_or_default();
            let options = v
                .child("options")
                .map(|o| {
                    o.children("option")
                        .filter_map(|opt| Some((opt.text_of("name")?.to_owned(), opt.text_of("value")?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            Ok(VolumeInfo {
                name: v.text_of("name").ok_or(XmlError::Missing("name"))?.to_owned(),
                id: v.text_of("id").ok_or(XmlError::Missing("id"))?.to_owned(),
                status: v.text_of("statusStr").ok_or(XmlError::Missing("statusStr"))?.to_owned(),
                type_str: v.text_of("typeStr").unwrap_or_default().to_owned(),
                dist_count: count("distCount")?,
                replica: count("replicaCount")?,
                arbiter: count("arbiterCount")?,
                disperse: count("disperseCount")?,
                redundancy: count("redundancyCount")?,
                bricks,
                options,
            })
        })
        .collect()
}

/// A brick process as `volume status [detail]` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrickProcess {
    pub host: String,
    pub path: String,
    pub online: bool,
    /// TCP port; `None` when offline (`N/A`).
    pub port: Option<u32>,
    /// Only with `detail`.
    pub size_total: Option<u64>,
    pub size_free: Option<u64>,
}

/// Brick processes per volume from `volume status VOL|all [detail]` (daemons such as the
/// self-heal daemon are left out: their "path" is a host, not a directory).
pub fn volume_status(root: &Element) -> Result<BTreeMap<String, Vec<BrickProcess>>, XmlError> {
    let vols = root.find(&["volStatus", "volumes"]).ok_or(XmlError::Missing("volStatus/volumes"))?;
    vols.children("volume")
        .map(|v| {
            let name = v.text_of("volName").ok_or(XmlError::Missing("volName"))?.to_owned();
            let bricks = v
                .children("node")
                .filter(|n| n.text_of("path").is_some_and(|p| p.starts_with('/')))
                .map(|n| BrickProcess {
                    host: n.text_of("hostname").unwrap_or_default().to_owned(),
                    path: n.text_of("path").unwrap_or_default().to_owned(),
                    online: n.text_of("status") == Some("1"),
                    port: n.num_of("port"),
                    size_total: n.num_of("sizeTotal"),
                    size_free: n.num_of("sizeFree"),
                })
                .collect();
            Ok((name, bricks))
        })
        .collect()
}

/// A process of a started volume as `volume status` lists it: a brick (`HOST:PATH`) or one of
/// the volume's daemons (e.g. `Self-heal Daemon`), with its node's UUID and its pid (`None`
/// when offline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeProcess {
    pub volume: String,
    pub name: String,
    pub peer_id: String,
    pub pid: Option<u32>,
}

/// Every process (bricks and daemons) of every volume in `volume status all`.
pub fn volume_processes(root: &Element) -> Result<Vec<VolumeProcess>, XmlError> {
    let vols = root.find(&["volStatus", "volumes"]).ok_or(XmlError::Missing("volStatus/volumes"))?;
    let mut processes = Vec::new();
    for v in vols.children("volume") {
        let volume = v.text_of("volName").ok_or(XmlError::Missing("volName"))?;
        for n in v.children("node") {
            let (host, path) = (n.text_of("hostname").unwrap_or_default(), n.text_of("path").unwrap_or_default());
            processes.push(VolumeProcess {
                volume: volume.to_owned(),
                name: if path.starts_with('/') { format!("{host}:{path}") } else { host.to_owned() },
                peer_id: n.text_of("peerid").unwrap_or_default().to_owned(),
                pid: n.num_of::<i64>("pid").and_then(|p| u32::try_from(p).ok()).filter(|&p| p > 0),
            });
        }
    }
    Ok(processes)
}

/// The addresses connected to each brick (`HOST:PATH`) in `volume status VOL clients` (a
/// client's `ADDRESS:PORT` without the port, which changes on every reconnect).
pub fn brick_clients(root: &Element) -> Result<BTreeMap<String, BTreeSet<String>>, XmlError> {
    let vols = root.find(&["volStatus", "volumes"]).ok_or(XmlError::Missing("volStatus/volumes"))?;
    let mut out = BTreeMap::new();
    for n in vols.children("volume").flat_map(|v| v.children("node")) {
        let (host, path) = (n.text_of("hostname").unwrap_or_default(), n.text_of("path").unwrap_or_default());
        let clients = n
            .child("clientsStatus")
            .into_iter()
            .flat_map(|c| c.children("client"))
            .filter_map(|c| c.text_of("hostname"))
            .map(|a| a.rsplit_once(':').map_or(a, |(address, _port)| address).to_owned())
            .collect();
        out.insert(format!("{host}:{path}"), clients);
    }
    Ok(out)
}

/// Option values from `volume get VOL all|KEY`, with gluster's ` (DEFAULT)` marker removed.
pub fn volume_options(root: &Element) -> Result<BTreeMap<String, String>, XmlError> {
    let opts = root.child("volGetopts").ok_or(XmlError::Missing("volGetopts"))?;
    Ok(opts
        .children("Opt")
        .filter_map(|o| {
            let value = o.text_of("Value")?;
            let value = value.strip_suffix(" (DEFAULT)").unwrap_or(value);
            Some((o.text_of("Option")?.to_owned(), value.to_owned()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;

    fn ok(name: &str) -> Element {
        cli_output(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn err(name: &str) -> XmlError {
        cli_output(&fixture(name)).expect_err(name)
    }

    #[test]
    fn brick_clients_are_addresses_without_ports() {
        let clients = brick_clients(&ok("volume-status-clients.xml")).unwrap();
        let one: Vec<&str> = clients["gluServer1:/vdisk/brick1"].iter().map(String::as_str).collect();
        assert_eq!(one, ["198.18.194.101", "198.18.194.11", "198.18.194.12"]);
        assert_eq!(clients["gluServer2:/vdisk/brick1"].len(), 1);
    }

    #[test]
    fn volume_processes_name_bricks_and_daemons_with_their_node_and_pid() {
        let all = volume_processes(&ok("volume-status.xml")).unwrap();
        let gs1 = "fca0ad99-8589-4e71-ae6f-b5a748661e38";
        let local: Vec<(&str, Option<u32>)> =
            all.iter().filter(|p| p.peer_id == gs1).map(|p| (p.name.as_str(), p.pid)).collect();
        assert_eq!(local, [("gs1:/srv/b1", Some(209)), ("Self-heal Daemon", Some(226))]);
        assert!(all.iter().all(|p| p.volume == "gv0"));
    }

    #[test]
    fn errors_carry_gluster_message() {
        assert_eq!(err("volume-info-missing.xml").to_string(), "Volume does not exist");
        assert_eq!(err("volume-create-exists.xml").to_string(), "Volume gv0 already exists");
        assert_eq!(err("volume-start-again.xml").to_string(), "Volume gv0 already started");
        assert_eq!(
            err("peer-probe-unknown.xml").to_string(),
            "Probe returned with Transport endpoint is not connected"
        );
        assert!(err("volume-set-bad.xml").to_string().starts_with("option : no.such-option does not exist"));
        assert!(matches!(err("heal-info-dist.xml"), XmlError::Gluster { op_errno: 22, .. }));
        assert!(matches!(cli_output("Connection failed."), Err(XmlError::Missing(_) | XmlError::Malformed(_))));
        assert!(cli_output("<cliOutput><opRet>0</opRet>").is_err());
    }

    #[test]
    fn probe_answers_are_successes() {
        for name in ["peer-probe-by-ip.xml", "peer-probe-by-name.xml", "peer-probe-again.xml", "peer-probe-self.xml"] {
            ok(name);
        }
        assert_eq!(ok("peer-probe-again.xml").text_of("output"), Some("Host gs2 port 24007 already in peer list"));
    }

    #[test]
    fn peer_status_and_pool_list() {
        assert!(peers(&ok("peer-status-empty.xml")).unwrap().is_empty());

        let by_ip = peers(&ok("peer-status-by-ip.xml")).unwrap();
        assert_eq!(by_ip.len(), 1);
        assert!(by_ip[0].in_cluster() && !by_ip[0].known_as("gs2") && by_ip[0].known_as("198.18.250.2"));

        let named = &peers(&ok("peer-status.xml")).unwrap()[0];
        assert_eq!(named.hostname, "198.18.250.2");
        assert_eq!(named.names, ["198.18.250.2", "gs2"]);
        assert!(named.known_as("GS2") && named.in_cluster() && !named.is_local);
        assert_eq!(named.describe(), "Peer in Cluster (Connected)");

        let gone = &peers(&ok("peer-status-disconnected.xml")).unwrap()[0];
        assert!(!gone.in_cluster());
        assert_eq!(gone.describe(), "Peer in Cluster (Disconnected)");

        let pool = peers(&ok("pool-list.xml")).unwrap();
        assert_eq!(pool.len(), 2);
        assert!(!pool[0].is_local && pool[0].known_as("gs2"));
        assert!(pool[1].is_local && pool[1].connected);
        assert_eq!(pool[1].uuid, "fca0ad99-8589-4e71-ae6f-b5a748661e38");
        let single = peers(&ok("pool-list-single.xml")).unwrap();
        assert!(single.len() == 1 && single[0].is_local);
    }

    #[test]
    fn volume_info_layouts() {
        assert!(volumes(&ok("volume-info-none.xml")).unwrap().is_empty());
        let created = &volumes(&ok("volume-info-created.xml")).unwrap()[0];
        assert_eq!((created.name.as_str(), created.status.as_str()), ("gv0", "Created"));
        assert!(!created.started());

        let all = volumes(&ok("volume-info-all.xml")).unwrap();
        let by_name = |n: &str| all.iter().find(|v| v.name == n).unwrap();
        let gv0 = by_name("gv0");
        assert_eq!(gv0.id, "9dac9e40-d9df-48cc-ae4d-eee3d219139f");
        assert!(gv0.started() && gv0.heals());
        assert_eq!((gv0.replica, gv0.arbiter, gv0.disperse, gv0.dist_count), (2, 0, 0, 1));
        assert_eq!(gv0.bricks.iter().map(BrickInfo::spec).collect::<Vec<_>>(), ["gs1:/srv/b1", "gs2:/srv/b1"]);
        assert_eq!(gv0.options.get("performance.cache-size").map(String::as_str), Some("512MB"));

        let gva = by_name("gva");
        assert_eq!((gva.replica, gva.arbiter), (3, 1));
        assert_eq!(gva.bricks.iter().map(|b| b.is_arbiter).collect::<Vec<_>>(), [false, false, true]);

        let gve = by_name("gve");
        assert_eq!((gve.type_str.as_str(), gve.disperse, gve.redundancy), ("Disperse", 3, 1));
        let gvd = by_name("gvd");
        assert_eq!((gvd.type_str.as_str(), gvd.replica, gvd.dist_count), ("Distribute", 1, 2));
        assert!(!gvd.heals());
        let gvdr = by_name("gvdr");
        assert_eq!((gvdr.replica, gvdr.dist_count, gvdr.bricks.len()), (2, 2, 4));
    }

    #[test]
    fn volume_status_ports_and_sizes() {
        let plain = volume_status(&ok("volume-status.xml")).unwrap();
        let gv0 = &plain["gv0"];
        assert_eq!(gv0.len(), 2, "self-heal daemons are not bricks");
        assert_eq!((gv0[0].host.as_str(), gv0[0].path.as_str(), gv0[0].port), ("gs1", "/srv/b1", Some(60427)));
        assert_eq!(gv0[0].size_total, None);

        let detail = volume_status(&ok("volume-status-detail.xml")).unwrap();
        assert_eq!(detail["gv0"][1].size_total, Some(12638031872));
        assert!(detail["gv0"][1].size_free.is_some() && detail["gv0"][1].online);

        let down = volume_status(&ok("volume-status-brick-down.xml")).unwrap();
        assert!(!down["gv0"][1].online);
        assert_eq!(down["gv0"][1].port, None);

        let all = volume_status(&ok("volume-status-all-detail.xml")).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["gv0", "gva", "gvd", "gve"]);
        assert_eq!(err("volume-status-stopped.xml").to_string(), "Volume gvd is not started");
    }

    #[test]
    fn volume_get_strips_default_marker() {
        let all = volume_options(&ok("volume-get.xml")).unwrap();
        assert!(all.len() > 300);
        assert_eq!(all["performance.cache-size"], "512MB");
        assert_eq!(all["cluster.min-free-disk"], "10%");
        assert_eq!(all["cluster.lookup-optimize"], "on");
        let one = volume_options(&ok("volume-get-one.xml")).unwrap();
        assert_eq!(one.into_iter().collect::<Vec<_>>(), [("performance.cache-size".into(), "512MB".into())]);
    }

    #[test]
    fn entities_and_attributes_are_decoded() {
        let root = parse_tree("<a x=\"1&amp;2\"><b>&lt;c&#62;</b><e/></a>").unwrap();
        assert_eq!(root.attrs, [("x".to_owned(), "1&2".to_owned())]);
        assert_eq!(root.text_of("b"), Some("<c>"));
        assert!(root.child("e").is_some());
    }

    #[test]
    fn bricks_split_at_first_colon_slash() {
        assert_eq!(split_brick("gs1:/srv/b1"), Some(("gs1", "/srv/b1")));
        assert_eq!(split_brick("gs1:/srv/a:b"), Some(("gs1", "/srv/a:b")));
        assert_eq!(split_brick("nohost"), None);
    }
}
