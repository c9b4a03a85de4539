"""HTTP plumbing every package's routes share (strict bodies, one error shape, arrival stamps);
may import services and loa."""
