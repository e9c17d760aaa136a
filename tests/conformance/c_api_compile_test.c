/*
 * tests/conformance/c_api_compile_test.c: the public API compiles as C11
 * (and, copied to a .cc by meson.build, as C++20), every type and function
 * is used in a realistic sequence, and a few ABI facts are pinned.
 *
 * It only needs to compile (and later link) until lib/api implements the
 * header; shoal_api_compile_example() is never called by a test yet.
 */
#include <shoal/verbs.h>

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- ABI facts (a change here breaks every compiled application) -------- */

static_assert(sizeof(struct shoal_wc) == 64, "shoal_wc is one cache line");
static_assert(offsetof(struct shoal_wc, wr_id) == 0, "wc.wr_id");
static_assert(offsetof(struct shoal_wc, imm_data) == 8, "wc.imm_data");
static_assert(offsetof(struct shoal_wc, peer_id) == 16, "wc.peer_id");
static_assert(offsetof(struct shoal_wc, byte_len) == 24, "wc.byte_len");
static_assert(offsetof(struct shoal_wc, qp_num) == 28, "wc.qp_num");
static_assert(offsetof(struct shoal_wc, status) == 40, "wc.status");
static_assert(offsetof(struct shoal_wc, opcode) == 42, "wc.opcode");
static_assert(sizeof(struct shoal_sge) == 16, "shoal_sge matches ibv_sge");
static_assert(offsetof(struct shoal_sge, lkey) == 12, "sge.lkey");
static_assert(offsetof(struct shoal_send_wr, wr_id) == 0, "send_wr.wr_id first");
static_assert(offsetof(struct shoal_recv_wr, wr_id) == 0, "recv_wr.wr_id first");
static_assert(offsetof(struct shoal_open_attr, comp_mask) == 0, "comp_mask first");
static_assert(offsetof(struct shoal_qp_init_attr, comp_mask) == 0, "comp_mask first");
static_assert(sizeof(((struct shoal_send_wr *)0)->wr) == 32, "send_wr.wr union has room");

/* Values shared with ibverbs so ported tables and logs keep their meaning. */
static_assert(SHOAL_WC_SUCCESS == 0, "status");
static_assert(SHOAL_WC_LOC_LEN_ERR == 1, "status");
static_assert(SHOAL_WC_LOC_PROT_ERR == 4, "status");
static_assert(SHOAL_WC_WR_FLUSH_ERR == 5, "status");
static_assert(SHOAL_WC_REM_INV_REQ_ERR == 9, "status");
static_assert(SHOAL_WC_REM_ACCESS_ERR == 10, "status");
static_assert(SHOAL_WC_REM_OP_ERR == 11, "status");
static_assert(SHOAL_WC_RETRY_EXC_ERR == 12, "status");
static_assert(SHOAL_WC_RNR_RETRY_EXC_ERR == 13, "status");
static_assert(SHOAL_WC_GENERAL_ERR == 21, "status");
static_assert(SHOAL_WR_RDMA_WRITE == 0 && SHOAL_WR_RDMA_WRITE_WITH_IMM == 1 &&
                  SHOAL_WR_SEND == 2 && SHOAL_WR_SEND_WITH_IMM == 3 && SHOAL_WR_RDMA_READ == 4,
              "wr opcodes");
static_assert(SHOAL_WC_SEND == 0 && SHOAL_WC_RDMA_WRITE == 1 && SHOAL_WC_RDMA_READ == 2 &&
                  SHOAL_WC_RECV == 128 && SHOAL_WC_RECV_RDMA_WITH_IMM == 129,
              "wc opcodes");
static_assert(SHOAL_QPT_RUD == 1 && SHOAL_QPT_ROD == 2 && SHOAL_QPT_UUD == 3, "qp types");
static_assert(SHOAL_MODE_LIBRARY == 0 && SHOAL_MODE_THREADED == 1, "modes");
static_assert(SHOAL_ACCESS_LOCAL_WRITE == 1 && SHOAL_ACCESS_REMOTE_WRITE == 2 &&
                  SHOAL_ACCESS_REMOTE_READ == 4,
              "access flags");
static_assert(SHOAL_SEND_SIGNALED == 2, "send flags");

/* Wire-fixed limits. */
static_assert(SHOAL_MAX_MSG_SIZE == 0xFFFFFFFFull, "32-bit msg_off/req_len");
static_assert(SHOAL_MAX_QP_PER_ENGINE == 4095, "12-bit res_index, 0xFFF reserved");
static_assert(SHOAL_QPN_ENGINE(0x123456u) == 0x123u && SHOAL_QPN_INDEX(0x123456u) == 0x456u,
              "qpn layout");
static_assert(SHOAL_API_VERSION == ((SHOAL_API_VERSION_MAJOR << 16) | SHOAL_API_VERSION_MINOR),
              "version");

/* ---- every function, in the order an application calls them ------------- */

#define CHECK(call)                                                              \
  do {                                                                           \
    int rc_ = (call);                                                            \
    if (rc_ != 0) {                                                              \
      fprintf(stderr, "%s: %s (%s)\n", #call, shoal_strerror(rc_), shoal_last_error()); \
      return rc_;                                                                \
    }                                                                            \
  } while (0)

enum { kBufSize = 1 << 16, kDepth = 64 };

static uint8_t send_buf[kBufSize];
static uint8_t recv_buf[kBufSize];

/* Poll one completion, driving the engine; returns 0 and fills *wc, or an errno. */
static int wait_one(struct shoal_context *ctx, struct shoal_cq *cq, struct shoal_wc *wc) {
  for (;;) {
    int n = shoal_poll_cq(cq, 1, wc);
    if (n == 1) return 0;
    if (n == -EOVERFLOW) {
      struct shoal_cq_attr cattr;
      if (shoal_query_cq(cq, &cattr, sizeof cattr) == 0)
        fprintf(stderr, "cq too small: %llu completions waited\n",
                (unsigned long long)cattr.held_total);
      continue; /* nothing was lost */
    }
    if (n < 0) return -n;
    if (shoal_progress(ctx, SHOAL_ENGINE_ALL, 0) < 0) return EIO;
  }
}

int shoal_api_compile_example(void);

int shoal_api_compile_example(void) {
  if (shoal_api_version() >> 16 != SHOAL_API_VERSION_MAJOR) return ENOTSUP;

  /* Context: library mode, one engine, on a shared in-process fabric. */
  struct shoal_open_attr oattr;
  memset(&oattr, 0, sizeof oattr);
  oattr.comp_mask = SHOAL_OPEN_ATTR_MODE | SHOAL_OPEN_ATTR_NUM_ENGINES |
                    SHOAL_OPEN_ATTR_INSTANCE_NAME | SHOAL_OPEN_ATTR_LOG_SPEC |
                    SHOAL_OPEN_ATTR_JOB_ID;
  oattr.mode = SHOAL_MODE_LIBRARY;
  oattr.num_engines = 1;
  oattr.instance_name = "c-api-test";
  oattr.log_spec = "warn";
  oattr.job_id = 7;
  struct shoal_context *ctx = NULL;
  CHECK(shoal_open("sim://capi?hosts=2", &oattr, &ctx));

  struct shoal_context_attr dattr;
  CHECK(shoal_query_context(ctx, &dattr, sizeof dattr));
  if (dattr.max_sge < 2 || dattr.max_msg_size < kBufSize) return ENOTSUP;

  struct shoal_pd *pd = NULL;
  CHECK(shoal_alloc_pd(ctx, &pd));

  struct shoal_mr *smr = NULL, *rmr = NULL;
  CHECK(shoal_reg_mr(pd, send_buf, sizeof send_buf, SHOAL_ACCESS_REMOTE_READ, &smr));
  CHECK(shoal_reg_mr(pd, recv_buf, sizeof recv_buf,
                     SHOAL_ACCESS_LOCAL_WRITE | SHOAL_ACCESS_REMOTE_WRITE, &rmr));

  struct shoal_cq *cq = NULL;
  CHECK(shoal_create_cq(ctx, kDepth, SHOAL_ENGINE_ANY, &cq));

  struct shoal_qp_init_attr qattr;
  memset(&qattr, 0, sizeof qattr);
  qattr.comp_mask = SHOAL_QP_INIT_ATTR_BUDGETS;
  qattr.qp_type = SHOAL_QPT_RUD;
  qattr.send_cq = cq;
  qattr.recv_cq = cq;
  qattr.qp_context = &qattr;
  qattr.cap.max_send_wr = kDepth / 2;
  qattr.cap.max_recv_wr = kDepth / 2;
  qattr.cap.max_send_sge = 2;
  qattr.cap.max_recv_sge = 1;
  qattr.cap.max_inline_data = 0;
  qattr.sq_sig_all = 0;
  qattr.retry_budget_us = 500000;
  qattr.rnr_budget_us = 100000;
  struct shoal_qp *qp = NULL;
  CHECK(shoal_create_qp(pd, &qattr, &qp));
  if (shoal_qp_context(qp) != &qattr) return EINVAL;

  /* Loopback: an AH to our own address and QP. */
  struct shoal_ah *ah = NULL;
  CHECK(shoal_create_ah(pd, dattr.local_addr, shoal_qp_num(qp), &ah));

  struct shoal_sge rsge;
  rsge.addr = (uint64_t)(uintptr_t)recv_buf;
  rsge.length = kBufSize / 2;
  rsge.lkey = rmr->lkey;
  struct shoal_recv_wr rwr;
  memset(&rwr, 0, sizeof rwr);
  rwr.wr_id = 100;
  rwr.next = NULL;
  rwr.sg_list = &rsge;
  rwr.num_sge = 1;
  struct shoal_recv_wr *bad_rwr = NULL;
  CHECK(shoal_post_recv(qp, &rwr, &bad_rwr));

  /* Two WRs, two SGEs each: a SEND_WITH_IMM, then an RDMA_WRITE (fenced). */
  struct shoal_sge ssge[2];
  ssge[0].addr = (uint64_t)(uintptr_t)send_buf;
  ssge[0].length = 100;
  ssge[0].lkey = smr->lkey;
  ssge[1].addr = (uint64_t)(uintptr_t)(send_buf + 4096);
  ssge[1].length = 200;
  ssge[1].lkey = smr->lkey;

  struct shoal_send_wr swr[2];
  memset(swr, 0, sizeof swr);
  swr[0].wr_id = 1;
  swr[0].next = &swr[1];
  swr[0].sg_list = ssge;
  swr[0].num_sge = 2;
  swr[0].opcode = SHOAL_WR_SEND_WITH_IMM;
  swr[0].send_flags = SHOAL_SEND_SIGNALED;
  swr[0].imm_data = 0x1122334455667788ull;
  swr[0].ah = ah;
  swr[1].wr_id = 2;
  swr[1].next = NULL;
  swr[1].sg_list = ssge;
  swr[1].num_sge = 2;
  swr[1].opcode = SHOAL_WR_RDMA_WRITE;
  swr[1].send_flags = SHOAL_SEND_SIGNALED | SHOAL_SEND_FENCE;
  swr[1].tc = 0;
  swr[1].ah = ah;
  swr[1].wr.rdma.remote_addr = (uint64_t)(uintptr_t)(recv_buf + kBufSize / 2);
  swr[1].wr.rdma.rkey = rmr->rkey;
  struct shoal_send_wr *bad_swr = NULL;
  CHECK(shoal_post_send(qp, swr, &bad_swr));

  /* Three completions: the receive and both sends, in any order (RUD). */
  for (int i = 0; i < 3; ++i) {
    struct shoal_wc wc;
    CHECK(wait_one(ctx, cq, &wc));
    if (wc.status != SHOAL_WC_SUCCESS) {
      fprintf(stderr, "wr %llu: %s (vendor_err %u)\n", (unsigned long long)wc.wr_id,
              shoal_wc_status_str(wc.status), wc.vendor_err);
      return EIO;
    }
    if (wc.opcode == SHOAL_WC_RECV) {
      char from[SHOAL_ADDR_STRLEN];
      CHECK(shoal_peer_addr_str(ctx, wc.peer_id, from, sizeof from));
      if (wc.byte_len != 300 || !(wc.wc_flags & SHOAL_WC_WITH_IMM) ||
          wc.imm_data != 0x1122334455667788ull)
        return EIO;
      struct shoal_ah *reply = NULL;
      CHECK(shoal_create_ah_from_wc(pd, &wc, &reply));
      CHECK(shoal_destroy_ah(reply));
      printf("%u bytes from %s qp %u on qp %u\n", wc.byte_len, from, wc.src_qp, wc.qp_num);
    }
  }

  struct shoal_cq_attr cattr;
  CHECK(shoal_query_cq(cq, &cattr, sizeof cattr));

  /* Teardown in reverse; a receive still posted would flush here. */
  CHECK(shoal_destroy_ah(ah));
  CHECK(shoal_destroy_qp(qp));
  CHECK(shoal_destroy_cq(cq));
  CHECK(shoal_dereg_mr(rmr));
  CHECK(shoal_dereg_mr(smr));
  CHECK(shoal_dealloc_pd(pd));
  CHECK(shoal_close(ctx));
  return 0;
}
