"""bytewatch's alerting: decisions to people, durably and without leaking secrets."""
