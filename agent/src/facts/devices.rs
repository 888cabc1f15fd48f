//! Block devices for facts: `crate::lsblk` devices converted to proto, with whether a device
//! (itself or any descendant) carries `/` or `/boot` (`lsblk::BlockDevice::carries_*`). Pure.

use brickyard_proto::v1;

use crate::lsblk::BlockDevice;

fn device_type(kind: &str) -> v1::DeviceType {
    match kind {
        "disk" => v1::DeviceType::Disk,
        "part" => v1::DeviceType::Part,
        "loop" => v1::DeviceType::Loop,
        _ => v1::DeviceType::Other,
    }
}

pub fn to_proto(dev: &BlockDevice) -> v1::BlockDevice {
    v1::BlockDevice {
        name: dev.name.clone(),
        path: dev.path.clone(),
        size_bytes: dev.size_bytes,
        r#type: device_type(&dev.kind) as i32,
        type_name: dev.kind.clone(),
        partition_table: dev.partition_table.clone().unwrap_or_default(),
        filesystem: dev.filesystem.clone().unwrap_or_default(),
        label: dev.label.clone().unwrap_or_default(),
        uuid: dev.uuid.clone().unwrap_or_default(),
        mount_points: dev.mount_points.clone(),
        children: dev.children.iter().map(to_proto).collect(),
        carries_root: dev.carries_root(),
        carries_boot: dev.carries_boot(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, kind: &str, mounts: &[&str], children: Vec<BlockDevice>) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            path: format!("/dev/{name}"),
            kind: kind.into(),
            mount_points: mounts.iter().map(|m| m.to_string()).collect(),
            children,
            ..Default::default()
        }
    }

    #[test]
    fn root_and_boot_through_children() {
        let lvm = dev("vg-root", "lvm", &["/"], vec![]);
        let vda = dev(
            "vda",
            "disk",
            &[],
            vec![dev("vda1", "part", &["/boot/efi"], vec![]), dev("vda2", "part", &[], vec![lvm])],
        );
        let p = to_proto(&vda);
        assert!(p.carries_root && p.carries_boot);
        assert_eq!(p.r#type, v1::DeviceType::Disk as i32);
        assert!(!p.children[0].carries_root && p.children[0].carries_boot);
        assert!(p.children[1].carries_root && !p.children[1].carries_boot);
        assert_eq!(p.children[1].children[0].r#type, v1::DeviceType::Other as i32);
        let vdb = to_proto(&dev("vdb", "disk", &[], vec![dev("vdb1", "part", &["/vdisk"], vec![])]));
        assert!(!vdb.carries_root && !vdb.carries_boot);
        assert_eq!(to_proto(&dev("loop0", "loop", &[], vec![])).r#type, v1::DeviceType::Loop as i32);
    }
}
