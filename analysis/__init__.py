"""Pure analysis functions: pcap -> DataFrame -> metrics -> figures."""
