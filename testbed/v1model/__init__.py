"""The bundled v1model target: a P4_16 interpreter that behaves like BMv2's simple_switch."""
