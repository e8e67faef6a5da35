// Greedy continuation of token ids by llama.cpp: the peer kiln's GGUF runtime is compared with.
// Usage: llama_cpp_greedy MODEL.gguf N_NEW ID [ID ...]   (prints N_NEW ids, EOS not special)
// Built by scripts/make_gguf_greedy_fixture.sh against benches/build_llama_cpp.sh's build.
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "llama.h"

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf N_NEW ID [ID ...]\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const int n_new = atoi(argv[2]);
    std::vector<llama_token> ids;
    for (int i = 3; i < argc; i++) ids.push_back(atoi(argv[i]));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = ids.size() + n_new + 8;
    cp.n_batch = cp.n_ctx;
    cp.n_threads = 1;
    // KV cache type: f32 by default here, so that the comparison is about the weights and the
    // products (an f16 cache moves every logit by ~1e-3, which the int8 activations of a
    // quantized model amplify); KV_TYPE=f16 runs llama.cpp's own default, f16 (kiln's default for
    // GGUF models too). Flash attention stays off: it changes the summation order.
    const char * kv = getenv("KV_TYPE");
    const bool f16_cache = kv && strcmp(kv, "f16") == 0;
    cp.type_k = f16_cache ? GGML_TYPE_F16 : GGML_TYPE_F32;
    cp.type_v = f16_cache ? GGML_TYPE_F16 : GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.n_threads_batch = 1;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }
    llama_batch batch = llama_batch_get_one(ids.data(), ids.size());
    for (int step = 0; step < n_new; step++) {
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        const float * logits = llama_get_logits_ith(ctx, -1);
        llama_token best = 0;
        for (int v = 1; v < n_vocab; v++) if (logits[v] > logits[best]) best = v;
        printf(step ? " %d" : "%d", best);
        ids.push_back(best);
        batch = llama_batch_get_one(&ids.back(), 1);
    }
    printf("\n");
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
