"""bytewatch's SLO side: exchanges to counts, counts to burn rates, burn rates to decisions."""
