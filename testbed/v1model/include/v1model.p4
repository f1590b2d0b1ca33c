/* v1model.p4 for the bundled v1model target of this project.
 * Declares the v1model architecture as documented for BMv2's simple_switch (standard metadata,
 * externs, the six-block V1Switch package). Deprecated forms that programs still use are
 * declared too. Define V1MODEL_VERSION before including to select the newer generic forms;
 * this target accepts both forms whatever the version. */
#ifndef _V1_MODEL_P4_
#define _V1_MODEL_P4_

#include "core.p4"

#ifndef V1MODEL_VERSION
#define V1MODEL_VERSION 20180101
#endif

match_kind {
    range,
    optional,
    selector
}

typedef bit<9>  PortId_t;
typedef bit<48> EgressInstance_t;
typedef bit<48> Timestamp_t;
typedef bit<16> MulticastGroup_t;
typedef bit<16> ReplicationId_t;
typedef bit<3>  ClassOfService_t;
typedef bit<32> CloneSessionId_t;

/* Per-packet metadata the architecture fills in and reads back. */
@metadata @name("standard_metadata")
struct standard_metadata_t {
    PortId_t ingress_port;          /* port the packet arrived on */
    PortId_t egress_spec;           /* ingress sets it: output port, or the drop port */
    PortId_t egress_port;           /* egress reads it: the port the packet leaves on */
    bit<32>  instance_type;         /* NORMAL 0, INGRESS_CLONE 1, EGRESS_CLONE 2, RECIRC 4, REPLICATION 5, RESUBMIT 6 */
    bit<32>  packet_length;         /* bytes, as received (or as recirculated) */
    @alias("queueing_metadata.enq_timestamp") bit<32> enq_timestamp;
    @alias("queueing_metadata.enq_qdepth")    bit<19> enq_qdepth;
    @alias("queueing_metadata.deq_timedelta") bit<32> deq_timedelta;
    @alias("queueing_metadata.deq_qdepth")    bit<19> deq_qdepth;
    @alias("intrinsic_metadata.ingress_global_timestamp") bit<48> ingress_global_timestamp;
    @alias("intrinsic_metadata.egress_global_timestamp")  bit<48> egress_global_timestamp;
    @alias("intrinsic_metadata.mcast_grp")  bit<16> mcast_grp;   /* non-zero: replicate to this group */
    @alias("intrinsic_metadata.egress_rid") bit<16> egress_rid;  /* replication id of this copy */
    bit<1>   checksum_error;        /* set when verify_checksum fails */
    error    parser_error;          /* the error the parser stopped with */
    @alias("intrinsic_metadata.priority") bit<3> priority;       /* egress queue */
}

enum CounterType {
    packets,
    bytes,
    packets_and_bytes
}

enum MeterType {
    packets,
    bytes
}

/* An array of counters, readable by the control plane only. */
extern counter<I> {
    counter(bit<32> size, CounterType type);
    void count(in I index);
}

/* One counter per entry of the table it is attached to (table property `counters`). */
extern direct_counter {
    direct_counter(CounterType type);
    void count();
}

#define V1MODEL_METER_COLOR_GREEN  0
#define V1MODEL_METER_COLOR_YELLOW 1
#define V1MODEL_METER_COLOR_RED    2

/* An array of two-rate three-color meters (RFC 2698). */
extern meter<I> {
    meter(bit<32> size, MeterType type);
    void execute_meter<T>(in I index, out T result);
}

/* A meter per entry of the table it is attached to (table property `meters`). */
extern direct_meter<T> {
    direct_meter(MeterType type);
    void read(out T result);
}

/* An array of cells the data plane reads and writes. */
extern register<T, I> {
    register(bit<32> size);
    void read(out T result, in I index);
    void write(in I index, in T value);
}

extern action_profile {
    action_profile(bit<32> size);
}

/* A uniformly random value in [lo, hi]. */
extern void random<T>(out T result, in T lo, in T hi);

/* Send `data` to the control plane (the receiver number is ignored). */
extern void digest<T>(in bit<32> receiver, in T data);

enum HashAlgorithm {
    crc32,
    crc32_custom,
    crc16,
    crc16_custom,
    random,
    identity,
    csum16,
    xor16
}

/* Drop the packet at the end of this pipeline stage: egress_spec := drop port, mcast_grp := 0. */
@deprecated("Please use mark_to_drop(standard_metadata) instead.")
extern void mark_to_drop();
extern void mark_to_drop(inout standard_metadata_t standard_metadata);

/* result := base + (hash of data) % max, or base when max is 0. */
extern void hash<O, T, D, M>(out O result, in HashAlgorithm algo, in T base, in D data, in M max);

extern action_selector {
    action_selector(HashAlgorithm algorithm, bit<32> size, bit<32> outputWidth);
}

enum CloneType {
    I2E,
    E2E
}

@deprecated("Please use verify_checksum/update_checksum instead.")
extern Checksum16 {
    Checksum16();
    bit<16> get<D>(in D data);
}

/* In VerifyChecksum only: sets standard_metadata.checksum_error when the checksum is wrong. */
extern void verify_checksum<T, O>(in bool condition, in T data, in O checksum, HashAlgorithm algo);
/* In ComputeChecksum only: checksum := hash of data. */
extern void update_checksum<T, O>(in bool condition, in T data, inout O checksum, HashAlgorithm algo);
/* As above, with the unparsed payload appended to data. */
extern void verify_checksum_with_payload<T, O>(in bool condition, in T data, in O checksum, HashAlgorithm algo);
extern void update_checksum_with_payload<T, O>(in bool condition, in T data, inout O checksum, HashAlgorithm algo);

/* Restart ingress with the original packet, keeping user metadata marked @field_list(index). */
extern void resubmit_preserving_field_list(bit<8> index);
/* After egress, send the deparsed packet through the parser again. */
extern void recirculate_preserving_field_list(bit<8> index);
/* Send a copy to the mirroring session (I2E from ingress, E2E from egress). */
extern void clone(in CloneType type, in bit<32> session);
extern void clone_preserving_field_list(in CloneType type, in bit<32> session, bit<8> index);

@deprecated("Please use 'resubmit_preserving_field_list' instead")
extern void resubmit<T>(in T data);
@deprecated("Please use 'recirculate_preserving_field_list' instead")
extern void recirculate<T>(in T data);
@deprecated("Please use 'clone_preserving_field_list' instead")
extern void clone3<T>(in CloneType type, in bit<32> session, in T data);

/* Send at most `length` bytes of the packet. */
extern void truncate(in bit<32> length);

/* simple_switch logs and exits when these fail. */
extern void assert(in bool check);
extern void assume(in bool check);

/* Log a message; `{}` placeholders take the fields of `data` in order. */
extern void log_msg(string msg);
extern void log_msg<T>(string msg, in T data);

parser Parser<H, M>(packet_in b,
                    out H parsedHdr,
                    inout M meta,
                    inout standard_metadata_t standard_metadata);

control VerifyChecksum<H, M>(inout H hdr, inout M meta);

@pipeline
control Ingress<H, M>(inout H hdr,
                      inout M meta,
                      inout standard_metadata_t standard_metadata);

@pipeline
control Egress<H, M>(inout H hdr,
                     inout M meta,
                     inout standard_metadata_t standard_metadata);

control ComputeChecksum<H, M>(inout H hdr, inout M meta);

@deparser
control Deparser<H>(packet_out b, in H hdr);

package V1Switch<H, M>(Parser<H, M> p,
                       VerifyChecksum<H, M> vr,
                       Ingress<H, M> ig,
                       Egress<H, M> eg,
                       ComputeChecksum<H, M> ck,
                       Deparser<H> dep);

#endif
