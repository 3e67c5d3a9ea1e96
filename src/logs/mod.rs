//! Container logs in the CRI format the kubelet uses, their rotation, and reading them back.
