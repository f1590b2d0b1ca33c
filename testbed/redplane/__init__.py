"""RedPlane: the wire protocol between in-switch apps and the state store.

`protocol` declares the message layouts once; `scapy_layers` derives packet classes from it.
"""
