/* The header and metadata structs of a RedPlane app on a spine. Before including, an app
 * defines REDPLANE_HEADER_T (its layout's header type from layouts.p4) and app_meta_t. */
#ifndef P4APPS_REDPLANE_SPINE_TYPES_P4
#define P4APPS_REDPLANE_SPINE_TYPES_P4

struct headers_t {
    ethernet_t ethernet;
    arp_t arp;
    hello_t hello;
    ipv4_t ipv4;
    tcp_t tcp;
    udp_t udp;
    REDPLANE_HEADER_T rp;
    ipv4_t inner_ipv4;
    tcp_t inner_tcp;
    udp_t inner_udp;
}

struct metadata_t {
    fabric_meta_t fabric;
    redplane_meta_t rp;
    app_meta_t app;
}

#endif
