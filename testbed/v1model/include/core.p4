/* core.p4 for the bundled v1model target of this project.
 * Declares the P4_16 core library (spec section "The core library"): errors, packet_in,
 * packet_out, verify, NoAction and the three core match kinds. */
#ifndef _CORE_P4_
#define _CORE_P4_

/* The first seven errors, in this order, are defined by the specification. */
error {
    NoError,
    PacketTooShort,
    NoMatch,
    StackOutOfBounds,
    HeaderTooShort,
    ParserTimeout,
    ParserInvalidArgument
}

/* Bytes of the received packet, read by the parser. */
extern packet_in {
    /* Read a fixed-size header, advance past it and make it valid. */
    void extract<T>(out T hdr);
    /* Read a header whose varbit field takes `variableFieldSizeInBits` bits. */
    void extract<T>(out T variableSizeHeader, in bit<32> variableFieldSizeInBits);
    /* Read bits without consuming them. */
    T lookahead<T>();
    /* Skip bits. */
    void advance(in bit<32> sizeInBits);
    /* Length of the whole packet in bytes. */
    bit<32> length();
}

/* Bytes of the packet being sent, written by the deparser. */
extern packet_out {
    /* Append a header (if valid), or every header of a struct, union or stack in order. */
    void emit<T>(in T hdr);
}

/* Stop parsing with `toSignal` unless `check` holds. */
extern void verify(in bool check, in error toSignal);

/* An action that does nothing; the usual default action. */
@noWarn("unused")
action NoAction() {}

/* Match kinds every target provides. */
match_kind {
    exact,
    ternary,
    lpm
}

extern bool static_assert(bool check, string message);
extern bool static_assert(bool check);

#endif
