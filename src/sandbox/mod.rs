//! The sandbox: the pause process that owns a pod's net, uts and ipc namespaces, and the files
//! every container of the pod shares (/etc/hosts, /etc/resolv.conf, /etc/hostname, /dev/shm).

pub mod files;
pub mod pause;
