/*
 * include/shoal/verbs.h: the public C API of Shoal (the contract; C11 and C++).
 *
 * Shoal is a userspace reliable-unordered transport speaking UET PDS/SES.
 * This header is shaped like rdma-core's <infiniband/verbs.h>: protection
 * domains, memory regions with lkey/rkey, completion queues polled into
 * arrays, queue pairs fed with linked lists of work requests and a bad_wr
 * out-parameter, and attr structs with a comp_mask so the ABI can grow.
 * docs/api.md maps every ibv_* call to its shoal_* counterpart.
 *
 * Differences from ibverbs an RDMA programmer must know:
 *   - QPs are connectionless (like EFA SRD): there is no modify_qp state
 *     machine. A QP is usable as soon as shoal_create_qp returns, and every
 *     send WR names its destination with an address handle (AH = peer
 *     address + remote QP number), for RDMA WRITE/READ too.
 *   - RUD QPs complete messages in any order. A WRITE followed by a SEND to
 *     the same peer may land in either order; use SHOAL_SEND_FENCE or a ROD QP
 *     when the order matters.
 *   - Errors never move a QP to an error state: each WR succeeds or fails on
 *     its own. Work is flushed (SHOAL_WC_WR_FLUSH_ERR) only by
 *     shoal_destroy_qp.
 *   - Immediate data is 64 bits in host byte order (UET cmpl_data), rkeys are
 *     64 bits (UET mem_key).
 *   - A CQ never drops a completion; an overrun is reported (shoal_poll_cq).
 *   - Everything is software: in library mode the application runs the
 *     engine (shoal_progress, or shoal_poll_cq on an empty CQ).
 *
 * ---------------------------------------------------------------------------
 * RETURN CONVENTION
 *   Functions returning int return 0 on success or a positive errno value
 *   (<errno.h>), like ibv_post_send. shoal_poll_cq and shoal_progress return
 *   a count >= 0 or a negative errno value. Pointer outputs are written only
 *   on success. No function sets errno as its way of reporting, and no C++
 *   exception crosses this API.
 *   Any function taking a context (or an object of one) may return EIO
 *   (negative where counts are returned) after a fatal driver or engine
 *   failure: the context is then unusable except for shoal_close.
 *   shoal_last_error() gives a human-readable explanation of the last
 *   control-path failure on the calling thread ("udp://10.0.0.1:4793: bind:
 *   Address already in use").
 *
 * THREADS
 *   A context runs num_engines engines; each CQ belongs to one engine and a
 *   QP belongs to the engine of its CQs. "Engine calls" are
 *   shoal_create_cq, shoal_destroy_cq, shoal_create_qp, shoal_destroy_qp,
 *   shoal_post_send, shoal_post_recv, shoal_poll_cq and shoal_progress.
 *   - Library mode (SHOAL_MODE_LIBRARY): the application runs each engine on
 *     its own thread. All engine calls for engine E must come from one
 *     thread at a time, the thread that drives E ("E's thread"); handing E to
 *     another thread needs the application's own synchronisation
 *     (a happens-before edge), never concurrent calls.
 *   - Threaded mode (SHOAL_MODE_THREADED): shoal_open starts one engine
 *     thread per engine; the application talks to them through lock-free
 *     single-producer/single-consumer rings. Hence: shoal_post_send on a QP
 *     from one application thread at a time, shoal_post_recv on a QP from
 *     one application thread at a time (it may be a different thread from
 *     the sender), shoal_poll_cq on a CQ from one thread at a time. Create
 *     and destroy calls may come from any thread, but not concurrently with
 *     other calls on the same object.
 *   - Context-wide calls (shoal_query_context, shoal_alloc_pd,
 *     shoal_dealloc_pd, shoal_reg_mr, shoal_dereg_mr, shoal_create_ah*,
 *     shoal_destroy_ah, shoal_peer_addr_str, shoal_query_cq) are thread-safe
 *     in both modes: any thread, concurrently.
 *   - shoal_open / shoal_close: once per context; shoal_close only after
 *     every other call on the context has returned.
 *   - Pure functions (shoal_api_version, shoal_strerror, shoal_wc_status_str,
 *     shoal_last_error) may be called from any thread at any time.
 *   Several contexts (each with several engines) may live in one process.
 *
 * URI GRAMMAR (shoal_open)
 *   uri     = scheme "://" [ authority ] [ "?" option *( "&" option ) ]
 *   option  = key "=" value        ; value is percent-encoded ("%20" = space)
 *   An unknown scheme is ENODEV; a known scheme whose driver is not built in
 *   is ENOTSUP; a malformed URI, an unknown key or a bad value is EINVAL
 *   (typos never pass silently).
 *
 *   sim://[name][?mtu=B&inbox=N&loss=P&ecn=P&seed=S]
 *     In-process loopback fabric (drivers/sim/loopback), in wall-clock time.
 *     Contexts opened with the same name in one process share one fabric;
 *     each engine of each context gets the next address ("sim:1", "sim:2",
 *     ...). Default name "default". mtu: data payload bytes per packet
 *     (256..9000, default 4096); inbox: packets an endpoint buffers (default
 *     4096); loss: drop probability; ecn: probability a data packet arrives
 *     CE-marked; seed: for both. Address strings: "sim:N". The virtual-time
 *     fabrics of shoal-sim are a separate tool, not a URI.
 *   udp://IP[:PORT][?entropies=N&mtu=B&io=uring|mmsg&rx_buffers=N&sockbuf=B]
 *     Kernel UDP (drivers/udp, docs/drivers.md). IP is the local unicast
 *     IPv4 address to bind (a concrete address: it is this context's
 *     identity). Engine e listens on PORT + e; PORT defaults to
 *     SHOAL_UDP_PORT (4793), and PORT .. PORT + engines - 1 must lie in the
 *     listening window 4793..5048 (EINVAL otherwise). PORT 0: the driver
 *     takes a free block of the window (several contexts of one process).
 *     entropies=N (1..64, default 64) is the number of UDP source ports
 *     (paths) sprayed over: engine e sends through sockets bound to
 *     PORT + e + 256 * (i + 1), i < N, so a receiver derives the sender's
 *     listening port from the source port (port - 4793) % 256 + 4793.
 *     mtu: data payload bytes per packet (256..16384, default 4096; 1024 on
 *     a 1500-byte network); io=mmsg forces recvmmsg/sendmmsg instead of
 *     io_uring (also the automatic fallback when io_uring is unavailable);
 *     rx_buffers: receive buffers per engine (power of two 64..16384,
 *     default 1024); sockbuf: socket buffer bytes asked for (default 4 MiB,
 *     capped by net.core.rmem_max/wmem_max for ordinary users). Port in
 *     use: EADDRINUSE; IP not local: EADDRNOTAVAIL. Address strings:
 *     "IP:PORT" or "IP" (port 4793).
 *   dpdk://[?eal=ARGS&port=ID&lcores=LIST&ip=IP[:PORT]&fabric=NAME&...]
 *     DPDK ethdev (drivers/dpdk; all keys in drivers/dpdk/dpdk.h). eal= is
 *     passed to rte_eal_init (percent-encoded, space-separated); Shoal adds
 *     only "--no-huge" when no hugepages are free (logged). EAL starts once
 *     per process: a later context passes the same eal= or none (another
 *     one is EINVAL). port= is the ethdev port id (default 0), lcores= the
 *     lcores to run engines on (threaded mode; parsed, not applied yet),
 *     ip= the IPv4 address (and base UDP port, default 4793) of this
 *     context; fabric=NAME gives each context its own net_ring port on an
 *     in-process software switch (tests; ip= then defaults to 10.77.0.N).
 *     Address strings as for udp.
 *
 * ABI GROWTH
 *   Input structs (shoal_open_attr, shoal_qp_init_attr) carry a comp_mask:
 *   the caller sets the bit of every optional field it filled in; fields
 *   without a bit are mandatory. New optional fields are only ever appended
 *   with a new bit; a bit the library does not know is ENOTSUP. Output
 *   structs (shoal_context_attr, shoal_cq_attr) are passed with their size:
 *   the library fills what fits and zeroes the rest. Fixed-width integers
 *   (not enum types) are used in every struct so the layout is identical in
 *   C and C++ on every compiler; the enums only name the values.
 */
#ifndef SHOAL_VERBS_H
#define SHOAL_VERBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version and fixed limits ------------------------------------------- */

#define SHOAL_API_VERSION_MAJOR 0
#define SHOAL_API_VERSION_MINOR 1
/* major << 16 | minor; compare with shoal_api_version() at run time. */
#define SHOAL_API_VERSION ((SHOAL_API_VERSION_MAJOR << 16) | SHOAL_API_VERSION_MINOR)

/*
 * Limits the wire fixes (UET SES standard request). Everything else is a
 * run-time limit: see shoal_query_context.
 */
/* Largest message: msg_off and req_len are 32-bit, so 4 GiB - 1 bytes. */
#define SHOAL_MAX_MSG_SIZE 0xFFFFFFFFull
/*
 * QP numbers are 24 bits: the engine index in bits 23:12 (carried in the
 * SES pid_on_fep field) and the QP index within the engine in bits 11:0
 * (carried in res_index), so a request reaches its engine and endpoint
 * without a lookup. Index 0xFFF is reserved, hence 4095 QPs per engine.
 */
#define SHOAL_QPN_INDEX_BITS 12
#define SHOAL_QPN_ENGINE_BITS 12
#define SHOAL_MAX_QP_PER_ENGINE 4095u
#define SHOAL_MAX_ENGINES 4096u
#define SHOAL_QPN_ENGINE(qpn) (((uint32_t)(qpn) >> SHOAL_QPN_INDEX_BITS) & 0xFFFu)
#define SHOAL_QPN_INDEX(qpn) ((uint32_t)(qpn) & 0xFFFu)
/* The job (tenant) id is 24 bits on the wire. */
#define SHOAL_MAX_JOB_ID 0xFFFFFFu
/* Default UDP destination port of UET. */
#define SHOAL_UDP_PORT 4793

/* API constants (not wire facts). */
#define SHOAL_ENGINE_ANY (-1)                 /* shoal_create_cq: library picks */
#define SHOAL_ENGINE_ALL (-1)                 /* shoal_progress: every engine */
#define SHOAL_PEER_ID_NONE UINT64_MAX         /* shoal_wc.peer_id: no peer */
#define SHOAL_ADDR_STRLEN 64                  /* address strings incl. NUL */
#define SHOAL_DRIVER_NAMELEN 16

/* ---- opaque handles ------------------------------------------------------ */

struct shoal_context; /* an opened device: driver + engines */
struct shoal_pd;      /* protection domain */
struct shoal_cq;      /* completion queue (one engine) */
struct shoal_qp;      /* connectionless endpoint */
struct shoal_ah;      /* address handle: peer address + remote QP number */

/*
 * Memory region. Unlike the other handles its leading fields are public, as
 * in ibv_mr: lkey goes into every SGE on the data path, so reading a field
 * beats a call, and RDMA programmers expect mr->lkey / mr->rkey. The library
 * allocates the struct (private state follows these fields), so fields can be
 * appended without breaking the ABI. Read-only for the application.
 */
struct shoal_mr {
  struct shoal_context *context;
  struct shoal_pd *pd;
  void *addr;      /* start of the region, as registered */
  uint64_t length; /* bytes */
  uint32_t access; /* SHOAL_ACCESS_* flags */
  uint32_t lkey;   /* for shoal_sge.lkey on this context */
  uint64_t rkey;   /* for peers: shoal_send_wr.wr.rdma.rkey (UET mem_key) */
};

/* ---- enums (values are ABI; several match ibverbs numerically) ----------- */

enum shoal_mode {
  SHOAL_MODE_LIBRARY = 0,  /* the application drives engines: shoal_progress */
  SHOAL_MODE_THREADED = 1, /* the library runs one thread per engine */
};

enum shoal_access_flags {
  SHOAL_ACCESS_LOCAL_WRITE = 1u << 0,  /* receive buffers, RDMA READ sinks */
  SHOAL_ACCESS_REMOTE_WRITE = 1u << 1, /* target of RDMA WRITE (needs LOCAL_WRITE) */
  SHOAL_ACCESS_REMOTE_READ = 1u << 2,  /* source of RDMA READ */
  /* Remote addresses are offsets from the region start, not virtual
   * addresses (UET buf_off semantics; like IBV_ACCESS_ZERO_BASED). */
  SHOAL_ACCESS_ZERO_BASED = 1u << 5,
};

enum shoal_qp_type {
  SHOAL_QPT_RUD = 1, /* reliable, unordered delivery (default choice) */
  SHOAL_QPT_ROD = 2, /* reliable, ordered delivery per (QP, AH, traffic class) */
  SHOAL_QPT_UUD = 3, /* unreliable: single-packet SENDs, best effort */
};

enum shoal_wr_opcode { /* same values as enum ibv_wr_opcode */
  SHOAL_WR_RDMA_WRITE = 0,
  SHOAL_WR_RDMA_WRITE_WITH_IMM = 1,
  SHOAL_WR_SEND = 2,
  SHOAL_WR_SEND_WITH_IMM = 3,
  SHOAL_WR_RDMA_READ = 4,
};

enum shoal_send_flags {
  SHOAL_SEND_FENCE = 1u << 0,    /* start only after every earlier WR of this QP completed */
  SHOAL_SEND_SIGNALED = 1u << 1, /* completion on success too (errors always complete) */
  SHOAL_SEND_INLINE = 1u << 3,   /* copy the payload at post time; lkeys ignored */
};

enum shoal_wc_status { /* same values as enum ibv_wc_status */
  SHOAL_WC_SUCCESS = 0,
  SHOAL_WC_LOC_LEN_ERR = 1,        /* receive buffer smaller than the message */
  SHOAL_WC_LOC_PROT_ERR = 4,       /* bad lkey, SGE outside its MR, or access denied */
  SHOAL_WC_WR_FLUSH_ERR = 5,       /* QP destroyed with the WR outstanding */
  SHOAL_WC_REM_INV_REQ_ERR = 9,    /* target refused: no such QP, message too long for
                                      its receive buffer, job mismatch, bad opcode */
  SHOAL_WC_REM_ACCESS_ERR = 10,    /* bad rkey, range outside the MR, access denied */
  SHOAL_WC_REM_OP_ERR = 11,        /* target failed to carry out a valid request */
  SHOAL_WC_RETRY_EXC_ERR = 12,     /* peer unreachable within the retry budget */
  SHOAL_WC_RNR_RETRY_EXC_ERR = 13, /* no receive posted within the RNR budget */
  SHOAL_WC_GENERAL_ERR = 21,       /* anything else; see vendor_err */
};

enum shoal_wc_opcode { /* same values as enum ibv_wc_opcode */
  SHOAL_WC_SEND = 0,                /* SEND, SEND_WITH_IMM */
  SHOAL_WC_RDMA_WRITE = 1,          /* RDMA_WRITE, RDMA_WRITE_WITH_IMM */
  SHOAL_WC_RDMA_READ = 2,
  SHOAL_WC_RECV = 128,              /* a SEND arrived in a receive WR */
  SHOAL_WC_RECV_RDMA_WITH_IMM = 129 /* a WRITE_WITH_IMM consumed a receive WR */
};

enum shoal_wc_flags {
  SHOAL_WC_WITH_IMM = 1u << 1, /* imm_data is valid */
};

/* ---- device / context ---------------------------------------------------- */

enum shoal_open_attr_mask {
  SHOAL_OPEN_ATTR_MODE = 1u << 0,
  SHOAL_OPEN_ATTR_NUM_ENGINES = 1u << 1,
  SHOAL_OPEN_ATTR_INSTANCE_NAME = 1u << 2,
  SHOAL_OPEN_ATTR_LOG_SPEC = 1u << 3,
  SHOAL_OPEN_ATTR_ENGINE_CPUS = 1u << 4,
  SHOAL_OPEN_ATTR_JOB_ID = 1u << 5,
};

/* Options of shoal_open. Fields whose comp_mask bit is clear take defaults. */
struct shoal_open_attr {
  uint32_t comp_mask;   /* SHOAL_OPEN_ATTR_* bits of the fields set below */
  uint32_t mode;        /* enum shoal_mode; default SHOAL_MODE_LIBRARY */
  uint32_t num_engines; /* default 1 */
  uint32_t job_id;      /* UET job (tenant) id on every request; default 1 */
  /* Names derived paths (control sockets, shared memory, DPDK file prefix)
   * so instances never collide. Default "shoal-<pid>-<n>". */
  const char *instance_name;
  /* Log levels: "info" or "pds=debug,cc=info,*=warn". Default "warn";
   * the SHOAL_LOG environment variable, when set, overrides it. */
  const char *log_spec;
  /* Threaded mode: CPUs for the engine threads, "2-3" or "2,5" (one per
   * engine, in order; the threads are named "shoal-e<N>"). Default:
   * unpinned. EINVAL: malformed, fewer CPUs than engines, a CPU this
   * process may not run on, or library mode (the application's own threads
   * run the engines there). */
  const char *engine_cpus;
};

/*
 * Open a context on the driver named by `uri` (grammar at the top of this
 * file) and start its engines.
 * attr: NULL for all defaults.
 * Thread: any; see THREADS.
 * Errors: EINVAL (uri or out NULL, malformed URI, unknown option key, bad
 *         value, num_engines 0 or > SHOAL_MAX_ENGINES, job_id >
 *         SHOAL_MAX_JOB_ID, sim options differing from the fabric's),
 *         ENODEV (unknown scheme), ENOTSUP (driver not built in; unknown
 *         comp_mask bit), EADDRINUSE (UDP port in use; sim fabric has no free
 *         host), EADDRNOTAVAIL (IP not local), ENOMEM, EIO (driver failed to
 *         start: see shoal_last_error()).
 */
int shoal_open(const char *uri, const struct shoal_open_attr *attr,
               struct shoal_context **out);

/*
 * Stop the engines and release the context. Every PD, MR, CQ, QP and AH of
 * the context must have been destroyed first.
 * Thread: any, once, after every other call on ctx has returned.
 * Errors: EINVAL (ctx NULL), EBUSY (objects remain; nothing is released).
 */
int shoal_close(struct shoal_context *ctx);

/* Limits and facts of an open context (output struct: passed with its size). */
struct shoal_context_attr {
  char driver[SHOAL_DRIVER_NAMELEN];   /* "sim", "udp", "dpdk" */
  char local_addr[SHOAL_ADDR_STRLEN];  /* this context's address, in AH format */
  uint64_t max_msg_size;    /* <= SHOAL_MAX_MSG_SIZE */
  uint64_t max_mr_size;
  uint32_t mtu;             /* payload bytes per packet (1024 on 1500 B links, 4096 on 9000) */
  uint32_t mode;            /* enum shoal_mode */
  uint32_t num_engines;
  uint32_t max_qp;          /* whole context */
  uint32_t max_qp_per_engine; /* <= SHOAL_MAX_QP_PER_ENGINE */
  uint32_t max_cq;
  uint32_t max_cq_depth;
  uint32_t max_mr;
  uint32_t max_ah;
  uint32_t max_send_wr;     /* per QP */
  uint32_t max_recv_wr;     /* per QP */
  uint32_t max_sge;         /* per WR */
  uint32_t max_inline_data; /* bytes, for SHOAL_SEND_INLINE */
  uint32_t max_uud_msg_size;/* largest UUD message (one packet) */
  uint32_t num_tc;          /* traffic classes: shoal_send_wr.tc < num_tc */
  uint32_t job_id;
};

/*
 * Query the context's limits. Fills min(attr_size, sizeof) bytes of attr
 * and zeroes the rest of the caller's struct.
 * Thread: any (thread-safe).
 * Errors: EINVAL (ctx or attr NULL, attr_size 0).
 */
int shoal_query_context(struct shoal_context *ctx, struct shoal_context_attr *attr,
                        size_t attr_size);

/*
 * Library mode: run engine `engine` (or every engine with SHOAL_ENGINE_ALL)
 * once: receive, process timers, transmit, deliver completions, doing at
 * most `budget` units of work (packets, timer expiries, commands; 0 = the
 * library's default). Never blocks.
 * Threaded mode: returns 0 at once, so one application loop serves both.
 * Returns: units of work done (0 = idle), or a negative errno.
 * Thread: the engine's thread (library mode); with SHOAL_ENGINE_ALL, the one
 * thread that drives all engines.
 * Errors: -EINVAL (ctx NULL, engine out of range), -EIO (fatal engine error).
 */
int shoal_progress(struct shoal_context *ctx, int engine, int budget);

/* ---- protection domain and memory ------------------------------------- */

/*
 * Allocate a protection domain. MRs, QPs and AHs belong to one PD; a WR may
 * only use lkeys and AHs of its QP's PD (rkeys are checked against the
 * target's PD, which is the target QP's PD).
 * Thread: any (thread-safe).
 * Errors: EINVAL (ctx or out NULL), ENOMEM.
 */
int shoal_alloc_pd(struct shoal_context *ctx, struct shoal_pd **out);

/*
 * Free a PD.
 * Thread: any (thread-safe).
 * Errors: EINVAL (pd NULL), EBUSY (MRs, QPs or AHs of the PD remain).
 */
int shoal_dealloc_pd(struct shoal_pd *pd);

/*
 * Register [addr, addr + length) for access by the flags in `access`
 * (SHOAL_ACCESS_*). Bounds and access are checked on every use: local SGEs
 * when a WR is processed (failures complete with SHOAL_WC_LOC_PROT_ERR),
 * every remote WRITE/READ packet against the rkey's region (failures
 * complete at the initiator with SHOAL_WC_REM_ACCESS_ERR). Overlapping
 * registrations, also of one page, are allowed and independent.
 * Thread: any (thread-safe).
 * Errors: EINVAL (pd, addr or out NULL; length 0 or > max_mr_size; unknown
 *         access bit; REMOTE_WRITE without LOCAL_WRITE), ENOMEM (no memory or
 *         max_mr reached), EFAULT (the driver cannot reach the memory, e.g.
 *         dpdk external-memory registration failed).
 */
int shoal_reg_mr(struct shoal_pd *pd, void *addr, uint64_t length, uint32_t access,
                 struct shoal_mr **out);

/*
 * Deregister an MR. From its return on, remote accesses with its rkey fail
 * with SHOAL_WC_REM_ACCESS_ERR at the initiator, and the memory is the
 * application's again.
 * Thread: any (thread-safe).
 * Errors: EINVAL (mr NULL), EBUSY (a posted WR that has not completed yet
 *         uses its lkey: poll its completion first; the MR stays registered).
 */
int shoal_dereg_mr(struct shoal_mr *mr);

/* ---- completion queues ---------------------------------------------------- */

/*
 * Create a CQ holding up to `depth` completions, on engine `engine`
 * (SHOAL_ENGINE_ANY: the library spreads CQs over engines round-robin).
 * Size it for the completions that can be outstanding: the max_send_wr +
 * max_recv_wr of the QPs using it. See shoal_poll_cq for what happens when
 * it is too small.
 * Thread: library mode, the engine's thread (with SHOAL_ENGINE_ANY: a thread
 *         that may drive any engine); threaded mode, any.
 * Errors: EINVAL (ctx or out NULL, depth 0 or > max_cq_depth, engine out of
 *         range), ENOMEM (no memory or max_cq reached).
 */
int shoal_create_cq(struct shoal_context *ctx, uint32_t depth, int engine,
                    struct shoal_cq **out);

/*
 * Destroy a CQ. Completions still in it are discarded (as in ibverbs:
 * destroying is the application's explicit choice).
 * Thread: as shoal_create_cq, for the CQ's engine.
 * Errors: EINVAL (cq NULL), EBUSY (a QP still uses it).
 */
int shoal_destroy_cq(struct shoal_cq *cq);

/*
 * A completion: 64 bytes, one cache line. wr_id, status, opcode and qp_num
 * are valid in every completion (also failed ones, unlike ibv_wc); the
 * other fields are valid on SHOAL_WC_SUCCESS.
 */
struct shoal_wc {
  uint64_t wr_id;      /* from the WR */
  uint64_t imm_data;   /* host order; valid with SHOAL_WC_WITH_IMM */
  uint64_t peer_id;    /* receive: the sender; send side: the destination;
                          SHOAL_PEER_ID_NONE if unknown (flushed receive).
                          Stable per context; see shoal_peer_addr_str */
  uint32_t byte_len;   /* receive: bytes placed (RECV_RDMA_WITH_IMM: bytes
                          written by the WRITE); send side: message length */
  uint32_t qp_num;     /* local QP */
  uint32_t src_qp;     /* receive: the sender's QP number */
  uint32_t vendor_err; /* Shoal detail code for errors (UET NACK or SES
                          ret_code when the error came from the wire), else 0 */
  uint16_t status;     /* enum shoal_wc_status */
  uint16_t opcode;     /* enum shoal_wc_opcode */
  uint16_t wc_flags;   /* SHOAL_WC_* flags */
  uint8_t tc;          /* traffic class the message used */
  uint8_t reserved0;
  uint32_t reserved[4];
};

/*
 * Poll up to n completions into wc[0..n).
 * Returns the number written (0..n), or a negative errno.
 * Library mode: if the CQ holds no completion, the call first runs the CQ's
 * engine once (as shoal_progress(ctx, engine, 0)), so an ibverbs-style
 * busy-poll loop makes progress by itself. Except right after a call that
 * returned completions: the call that then finds the CQ empty (the end of a
 * `while ((n = shoal_poll_cq(...)) > 0)` drain loop) returns 0 at once,
 * so the application answers what it got before the engine's next pass.
 * Overrun: a CQ never drops a completion. When the engine has a completion
 * for a full CQ it keeps it (the WR still holds its send or receive queue
 * slot, so the backlog is bounded by the queues of the QPs using this CQ;
 * posts on them see EAGAIN sooner) and marks the CQ overrun. The first poll
 * after an overrun began returns -EOVERFLOW once and writes nothing; the
 * following polls return the entries, the held ones in the order they were
 * produced, after those already in the CQ. shoal_query_cq tells how often
 * and how many. -EOVERFLOW means "this CQ is too small", not "data lost".
 * Thread: library mode, the CQ engine's thread; threaded mode, one thread at
 *         a time per CQ.
 * Errors: -EINVAL (cq NULL, n < 0, wc NULL with n > 0), -EOVERFLOW (see
 *         above), -EIO (fatal engine error).
 */
int shoal_poll_cq(struct shoal_cq *cq, int n, struct shoal_wc *wc);

/* CQ state (output struct: passed with its size). */
struct shoal_cq_attr {
  uint32_t depth;
  int32_t engine;
  uint64_t overruns;     /* overrun episodes (each reported once by -EOVERFLOW) */
  uint64_t held_total;   /* completions that had to wait for room, ever */
  uint32_t held_now;     /* completions waiting for room right now */
  uint32_t reserved;
};

/*
 * Query a CQ's depth, engine and overrun counters. Fills min(attr_size,
 * sizeof) bytes and zeroes the rest of the caller's struct.
 * Thread: any (thread-safe; counters may be a moment old).
 * Errors: EINVAL (cq or attr NULL, attr_size 0).
 */
int shoal_query_cq(struct shoal_cq *cq, struct shoal_cq_attr *attr, size_t attr_size);

/* ---- queue pairs (connectionless endpoints) --------------------------- */

struct shoal_qp_cap {
  uint32_t max_send_wr;     /* outstanding send WRs (posted, not completed) */
  uint32_t max_recv_wr;     /* posted receive WRs */
  uint32_t max_send_sge;
  uint32_t max_recv_sge;
  uint32_t max_inline_data; /* 0: SHOAL_SEND_INLINE not used */
};

enum shoal_qp_init_attr_mask {
  SHOAL_QP_INIT_ATTR_BUDGETS = 1u << 0, /* retry_budget_us, rnr_budget_us */
};

struct shoal_qp_init_attr {
  uint32_t comp_mask;        /* SHOAL_QP_INIT_ATTR_* bits */
  uint32_t qp_type;          /* enum shoal_qp_type */
  struct shoal_cq *send_cq;  /* both CQs must be on the same engine; */
  struct shoal_cq *recv_cq;  /* they may be the same CQ */
  void *qp_context;          /* application pointer: shoal_qp_context() */
  struct shoal_qp_cap cap;
  uint32_t sq_sig_all;       /* non-zero: every send WR is signaled */
  /* SHOAL_QP_INIT_ATTR_BUDGETS (0 = context default). Budgets can only be
   * shorter than the context's: PDCs are shared, and a PDC gives up on a
   * silent peer by its own budget (12 timeouts in a row, RTO doubling up to
   * 100 ms) or RNR budget (7 RNR waits from 50 us, doubling). */
  uint32_t retry_budget_us;  /* peer silent this long for a WR: RETRY_EXC_ERR,
                                at the first retransmission timeout after it */
  uint32_t rnr_budget_us;    /* no receive posted this long: RNR_RETRY_EXC_ERR,
                                rounded up to whole RNR waits */
  uint32_t reserved[2];
};

/*
 * Create a QP of attr->qp_type on the engine of its CQs. It is ready at
 * once: no state transitions. Its QP number is shoal_qp_num().
 * Thread: library mode, the CQs' engine's thread; threaded mode, any.
 * Errors: EINVAL (pd, attr, CQ or out NULL; unknown qp_type; CQs of another
 *         context or of two engines; a cap above the context limit;
 *         max_send_wr and max_recv_wr both 0), ENOTSUP (unknown comp_mask bit),
 *         ENOMEM (no memory, or the engine has SHOAL_MAX_QP_PER_ENGINE /
 *         max_qp_per_engine QPs).
 */
int shoal_create_qp(struct shoal_pd *pd, const struct shoal_qp_init_attr *attr,
                    struct shoal_qp **out);

/*
 * Destroy a QP. Every WR still outstanding on it completes with
 * SHOAL_WC_WR_FLUSH_ERR on its CQ (also unsignaled sends), to be polled
 * after this returns. From the return on no byte is written into its
 * receive buffers and requests addressed to its QP number are refused
 * (REM_INV_REQ_ERR at the peer). The QP number may be reused later.
 * Thread: as shoal_create_qp; no post on the QP may run concurrently.
 * Errors: EINVAL (qp NULL).
 */
int shoal_destroy_qp(struct shoal_qp *qp);

/*
 * The QP's number: (engine << 12) | index, see SHOAL_QPN_ENGINE/INDEX.
 * Peers name it in shoal_create_ah. Thread: any. Errors: none (qp valid).
 */
uint32_t shoal_qp_num(const struct shoal_qp *qp);

/* The qp_context given at creation. Thread: any. Errors: none (qp valid). */
void *shoal_qp_context(const struct shoal_qp *qp);

/* ---- address handles ---------------------------------------------------- */

/*
 * Create an address handle for QP `remote_qpn` at `address`, a string in the
 * driver's format ("sim:3", "127.0.0.1:4793"; see the URI grammar), e.g. the
 * local_addr a peer read from shoal_query_context. Reachability is not
 * checked here: an unreachable peer shows as SHOAL_WC_RETRY_EXC_ERR, a
 * missing QP as SHOAL_WC_REM_INV_REQ_ERR. An AH may be used by any QP of its
 * PD on any engine.
 * Thread: any (thread-safe).
 * Errors: EINVAL (pd, address or out NULL; address not in the driver's
 *         format or outside the sim fabric; remote_qpn index 0xFFF or above
 *         24 bits), ENOMEM (no memory or max_ah reached).
 */
int shoal_create_ah(struct shoal_pd *pd, const char *address, uint32_t remote_qpn,
                    struct shoal_ah **out);

/*
 * Create an AH that answers the sender of a successful receive completion
 * (its peer_id and src_qp), like ibv_create_ah_from_wc.
 * Thread: any (thread-safe).
 * Errors: EINVAL (NULL argument; wc not a successful SHOAL_WC_RECV or
 *         SHOAL_WC_RECV_RDMA_WITH_IMM of this PD's context), ENOMEM.
 */
int shoal_create_ah_from_wc(struct shoal_pd *pd, const struct shoal_wc *wc,
                            struct shoal_ah **out);

/*
 * Destroy an AH. Send WRs already posted with it are unaffected.
 * Thread: any (thread-safe).
 * Errors: EINVAL (ah NULL).
 */
int shoal_destroy_ah(struct shoal_ah *ah);

/*
 * Format a peer id (shoal_wc.peer_id) as an address string usable by
 * shoal_create_ah, NUL-terminated, into buf[0..size).
 * SHOAL_ADDR_STRLEN bytes always suffice.
 * Thread: any (thread-safe).
 * Errors: EINVAL (ctx or buf NULL, unknown peer id or SHOAL_PEER_ID_NONE),
 *         ERANGE (buf too small; buf holds a truncated string if size > 0).
 */
int shoal_peer_addr_str(struct shoal_context *ctx, uint64_t peer_id, char *buf, size_t size);

/* ---- work requests ------------------------------------------------------ */

/* A piece of a message: addr within the MR of lkey (same as ibv_sge). */
struct shoal_sge {
  uint64_t addr;
  uint32_t length;
  uint32_t lkey;
};

struct shoal_send_wr {
  uint64_t wr_id;              /* returned in the completion */
  struct shoal_send_wr *next;  /* NULL ends the list */
  struct shoal_sge *sg_list;   /* may be NULL when num_sge == 0 */
  uint32_t num_sge;            /* 0 (empty message) .. max_send_sge */
  uint32_t opcode;             /* enum shoal_wr_opcode */
  uint32_t send_flags;         /* SHOAL_SEND_* flags */
  uint8_t tc;                  /* traffic class, < num_tc; 0 = default */
  uint8_t reserved0[3];
  uint64_t imm_data;           /* *_WITH_IMM: delivered to the target, host order */
  /* Destination (required for every opcode: QPs are connectionless). */
  struct shoal_ah *ah;
  union {
    struct {
      uint64_t remote_addr;    /* target address (offset with ZERO_BASED MRs) */
      uint64_t rkey;           /* target's shoal_mr.rkey */
    } rdma;                    /* RDMA_WRITE[_WITH_IMM], RDMA_READ */
    uint64_t reserved[4];      /* room for future opcodes' fields */
  } wr;
};

struct shoal_recv_wr {
  uint64_t wr_id;
  struct shoal_recv_wr *next;  /* NULL ends the list */
  struct shoal_sge *sg_list;   /* the message is scattered over these, in order */
  uint32_t num_sge;            /* 0 .. max_recv_sge (0: only for 0-byte messages
                                  and WRITE_WITH_IMM notifications) */
  uint32_t reserved;
};

/*
 * Post a list of send WRs. Each message (the concatenated SGEs, 0 bytes to
 * max_msg_size) is segmented into packets by the engine. The SGE memory must
 * stay untouched until the WR's completion (or its flush), except with
 * SHOAL_SEND_INLINE, which copies it before returning.
 * Posting stops at the first WR that cannot be accepted: *bad_wr points to it
 * and the WRs before it were posted; on success *bad_wr is not written.
 * Completion rule: every accepted WR ends in exactly one completion if it is
 * signaled (SHOAL_SEND_SIGNALED or sq_sig_all) or fails; an unsignaled WR
 * that succeeds ends silently and frees its send-queue slot then. Signaled
 * WRs complete in any order (RUD), but a signaled completion is delivered
 * only after every earlier unsignaled WR of the QP has ended, so, as in
 * ibverbs, it tells that their buffers are free again (selective
 * signaling). Problems found after acceptance (bad lkey, remote errors,
 * timeouts) are completion statuses, never post errors.
 * UUD QPs: SEND / SEND_WITH_IMM of at most max_uud_msg_size bytes only;
 * success means "handed to the wire".
 * In library mode the call may transmit before returning.
 * Thread: library mode, the QP engine's thread; threaded mode, one thread at
 *         a time per QP (send side).
 * Errors: EINVAL (qp, wr or bad_wr NULL; unknown opcode or flag; RDMA on a
 *         UUD QP; num_sge > max_send_sge; message > max_msg_size (UUD:
 *         max_uud_msg_size); INLINE above max_inline_data; ah NULL or of
 *         another PD; tc >= num_tc; INLINE on an RDMA READ), EAGAIN (send
 *         queue full, threaded-mode ring full, or the context's 4096 records
 *         for inline and multi-SGE WRs all in use: poll completions and
 *         retry), EIO.
 */
int shoal_post_send(struct shoal_qp *qp, struct shoal_send_wr *wr,
                    struct shoal_send_wr **bad_wr);

/*
 * Post a list of receive WRs. Any SEND to this QP from any peer, and any
 * RDMA_WRITE_WITH_IMM (which places no data here), consumes one, in posting
 * order as messages start arriving. A message longer than the buffer
 * completes with SHOAL_WC_LOC_LEN_ERR here (and REM_INV_REQ_ERR at the
 * sender). bad_wr as for shoal_post_send. Receive buffers need
 * SHOAL_ACCESS_LOCAL_WRITE; an SGE failing that or its bounds completes with
 * SHOAL_WC_LOC_PROT_ERR.
 * Thread: library mode, the QP engine's thread; threaded mode, one thread at
 *         a time per QP (receive side).
 * Errors: EINVAL (qp, wr or bad_wr NULL; num_sge > max_recv_sge), EAGAIN
 *         (receive queue or ring full, or the context's records for
 *         multi-SGE WRs all in use), EIO.
 */
int shoal_post_recv(struct shoal_qp *qp, struct shoal_recv_wr *wr,
                    struct shoal_recv_wr **bad_wr);

/* ---- misc ------------------------------------------------------------------ */

/* SHOAL_API_VERSION of the library actually linked. Thread: any. */
uint32_t shoal_api_version(void);

/* "SUCCESS", "LOC_LEN_ERR", ...; "UNKNOWN" for other values. Thread: any. */
const char *shoal_wc_status_str(int status);

/* Description of an errno value, positive or negative. Thread: any. */
const char *shoal_strerror(int err);

/*
 * Explanation of the last failed control-path call on this thread (never
 * NULL; "" if none). Valid until the next Shoal call on this thread.
 * Thread: any (thread-local).
 */
const char *shoal_last_error(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHOAL_VERBS_H */
