//! Block devices for facts: `crate::host::blockdev` devices converted to proto, with whether a
//! device (itself or any device on it) carries `/` or `/boot`, and its serial, WWN and by-id
//! names (so an operator can tell which disk a Cinder volume is). Pure.

use brickyard_proto::v1;

use crate::host::blockdev::{BlockDevice, Kind};

fn device_type(kind: &Kind) -> v1::DeviceType {
    match kind.name() {
        "disk" => v1::DeviceType::Disk,
        "part" => v1::DeviceType::Part,
        "loop" => v1::DeviceType::Loop,
        _ => v1::DeviceType::Other,
    }
}

pub fn to_proto(dev: &BlockDevice) -> v1::BlockDevice {
    let sig = &dev.signature;
    v1::BlockDevice {
        name: dev.name.clone(),
        path: dev.path.clone(),
        size_bytes: dev.size_bytes,
        r#type: device_type(&dev.kind) as i32,
        type_name: dev.kind.name().to_owned(),
        partition_table: sig.pttype.clone().unwrap_or_default(),
        filesystem: sig.fstype.clone().unwrap_or_default(),
        label: sig.label.clone().unwrap_or_default(),
        uuid: sig.uuid.clone().unwrap_or_default(),
        mount_points: dev.mount_points.clone(),
        children: dev.children.iter().map(to_proto).collect(),
        carries_root: dev.carries_root(),
        carries_boot: dev.carries_boot(),
        serial: dev.serial.clone().unwrap_or_default(),
        wwn: dev.wwn.clone().unwrap_or_default(),
        by_id: dev.by_id.clone(),
        read_only: dev.read_only,
        removable: dev.removable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, kind: Kind, mounts: &[&str], children: Vec<BlockDevice>) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            kernel_name: name.into(),
            path: format!("/dev/{name}"),
            kind,
            mount_points: mounts.iter().map(|m| m.to_string()).collect(),
            children,
            ..Default::default()
        }
    }

    #[test]
    fn root_and_boot_through_children() {
        let lvm = dev("vg-root", Kind::Dm("lvm".into()), &["/"], vec![]);
        let vda = dev(
            "vda",
            Kind::Disk,
            &[],
            vec![dev("vda1", Kind::Part, &["/boot/efi"], vec![]), dev("vda2", Kind::Part, &[], vec![lvm])],
        );
        let p = to_proto(&vda);
        assert!(p.carries_root && p.carries_boot);
        assert_eq!(p.r#type, v1::DeviceType::Disk as i32);
        assert!(!p.children[0].carries_root && p.children[0].carries_boot);
        assert!(p.children[1].carries_root && !p.children[1].carries_boot);
        let lv = &p.children[1].children[0];
        assert_eq!((lv.r#type, lv.type_name.as_str()), (v1::DeviceType::Other as i32, "lvm"));
        let vdb = to_proto(&dev("vdb", Kind::Disk, &[], vec![dev("vdb1", Kind::Part, &["/vdisk"], vec![])]));
        assert!(!vdb.carries_root && !vdb.carries_boot);
        assert_eq!(to_proto(&dev("loop0", Kind::Loop, &[], vec![])).r#type, v1::DeviceType::Loop as i32);
    }

    #[test]
    fn identity_and_signature_are_copied() {
        let mut vdc = dev("vdc", Kind::Disk, &[], vec![]);
        vdc.serial = Some("ec4eea2a-f0d9-4614-b".into());
        vdc.by_id = vec!["/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b".into()];
        vdc.signature.fstype = Some("xfs".into());
        let p = to_proto(&vdc);
        assert_eq!((p.serial.as_str(), p.wwn.as_str(), p.filesystem.as_str()), ("ec4eea2a-f0d9-4614-b", "", "xfs"));
        assert_eq!(p.by_id, ["/dev/disk/by-id/virtio-ec4eea2a-f0d9-4614-b"]);
    }
}
