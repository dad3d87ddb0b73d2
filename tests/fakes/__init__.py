"""In-process fakes of the services the monitor talks to, served on real sockets."""
