//! The pod network: the `peapod0` bridge, a veth pair per pod, and the IP allocator.
