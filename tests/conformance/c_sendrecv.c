/*
 * A C11 program against <shoal/verbs.h>, linked with libshoal: two contexts
 * on one sim:// fabric exchange a message with immediate data, the way an
 * RDMA program written in C would. Exit status 0 on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <shoal/verbs.h>

#define CHECK(call)                                                                  \
  do {                                                                               \
    int rc_ = (call);                                                                \
    if (rc_ != 0) {                                                                  \
      fprintf(stderr, "%s:%d: %s = %d (%s): %s\n", __FILE__, __LINE__, #call, rc_, \
              shoal_strerror(rc_), shoal_last_error());                              \
      return 1;                                                                      \
    }                                                                                \
  } while (0)

static int wait_one(struct shoal_cq *cq, struct shoal_context *other, struct shoal_wc *wc) {
  for (long i = 0; i < 50000000; ++i) {
    int n = shoal_poll_cq(cq, 1, wc);
    if (n < 0) return n;
    if (n == 1) return 0;
    shoal_progress(other, SHOAL_ENGINE_ALL, 0);
  }
  return -1;
}

int main(void) {
  struct shoal_context *a = NULL, *b = NULL;
  struct shoal_pd *pa = NULL, *pb = NULL;
  struct shoal_cq *ca = NULL, *cb = NULL;
  struct shoal_qp *qa = NULL, *qb = NULL;
  struct shoal_mr *ma = NULL, *mb = NULL;
  struct shoal_ah *ah = NULL;
  struct shoal_context_attr attr;
  struct shoal_qp_init_attr qattr;
  struct shoal_sge sge;
  struct shoal_recv_wr rwr, *rbad = NULL;
  struct shoal_send_wr swr, *sbad = NULL;
  struct shoal_wc wc;
  static char src[3000], dst[3000];

  CHECK(shoal_open("sim://c-program", NULL, &a));
  CHECK(shoal_open("sim://c-program", NULL, &b));
  CHECK(shoal_alloc_pd(a, &pa));
  CHECK(shoal_alloc_pd(b, &pb));
  CHECK(shoal_create_cq(a, 16, SHOAL_ENGINE_ANY, &ca));
  CHECK(shoal_create_cq(b, 16, SHOAL_ENGINE_ANY, &cb));
  memset(&qattr, 0, sizeof(qattr));
  qattr.qp_type = SHOAL_QPT_RUD;
  qattr.cap.max_send_wr = 8;
  qattr.cap.max_recv_wr = 8;
  qattr.cap.max_send_sge = 1;
  qattr.cap.max_recv_sge = 1;
  qattr.send_cq = ca;
  qattr.recv_cq = ca;
  CHECK(shoal_create_qp(pa, &qattr, &qa));
  qattr.send_cq = cb;
  qattr.recv_cq = cb;
  CHECK(shoal_create_qp(pb, &qattr, &qb));
  for (int i = 0; i < (int)sizeof(src); ++i) src[i] = (char)(i * 13);
  CHECK(shoal_reg_mr(pa, src, sizeof(src), SHOAL_ACCESS_LOCAL_WRITE, &ma));
  CHECK(shoal_reg_mr(pb, dst, sizeof(dst), SHOAL_ACCESS_LOCAL_WRITE, &mb));
  CHECK(shoal_query_context(b, &attr, sizeof(attr)));
  CHECK(shoal_create_ah(pa, attr.local_addr, shoal_qp_num(qb), &ah));

  sge.addr = (uint64_t)(uintptr_t)dst;
  sge.length = sizeof(dst);
  sge.lkey = mb->lkey;
  memset(&rwr, 0, sizeof(rwr));
  rwr.wr_id = 7;
  rwr.sg_list = &sge;
  rwr.num_sge = 1;
  CHECK(shoal_post_recv(qb, &rwr, &rbad));

  struct shoal_sge ssge = {(uint64_t)(uintptr_t)src, sizeof(src), ma->lkey};
  memset(&swr, 0, sizeof(swr));
  swr.wr_id = 8;
  swr.sg_list = &ssge;
  swr.num_sge = 1;
  swr.opcode = SHOAL_WR_SEND_WITH_IMM;
  swr.send_flags = SHOAL_SEND_SIGNALED;
  swr.imm_data = 42;
  swr.ah = ah;
  CHECK(shoal_post_send(qa, &swr, &sbad));

  if (wait_one(cb, a, &wc) != 0 || wc.status != SHOAL_WC_SUCCESS || wc.wr_id != 7 || wc.byte_len != sizeof(src) ||
      !(wc.wc_flags & SHOAL_WC_WITH_IMM) || wc.imm_data != 42 || memcmp(src, dst, sizeof(src)) != 0) {
    fprintf(stderr, "receive: bad completion (%s) or payload\n", shoal_wc_status_str(wc.status));
    return 1;
  }
  if (wait_one(ca, b, &wc) != 0 || wc.status != SHOAL_WC_SUCCESS || wc.wr_id != 8) {
    fprintf(stderr, "send: bad completion (%s)\n", shoal_wc_status_str(wc.status));
    return 1;
  }
  CHECK(shoal_destroy_ah(ah));
  CHECK(shoal_destroy_qp(qa));
  CHECK(shoal_destroy_qp(qb));
  CHECK(shoal_dereg_mr(ma));
  CHECK(shoal_dereg_mr(mb));
  CHECK(shoal_destroy_cq(ca));
  CHECK(shoal_destroy_cq(cb));
  CHECK(shoal_dealloc_pd(pa));
  CHECK(shoal_dealloc_pd(pb));
  CHECK(shoal_close(a));
  CHECK(shoal_close(b));
  printf("c_sendrecv: 3000 B with immediate data over sim:// from C: ok\n");
  return 0;
}
