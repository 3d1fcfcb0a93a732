"""Regenerates golden/tiny_vq.pt: a tiny tokenizer, an input image, and the codes and reconstruction that the
architecture must give. Run only when the architecture changes on purpose:
    python tests/tokenizer/make_golden.py"""

from pathlib import Path

import torch

from mirai_cli.data.crops import to_model_input, to_uint8
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel

HERE = Path(__file__).parent


def main() -> None:
    torch.manual_seed(1234)
    cfg = VQConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, decoder_num_res_blocks=2, z_channels=8,
                   codebook_size=32, codebook_dim=4, norm_groups=8, usage_buffer=256)
    model = VQModel(cfg).eval()
    with torch.no_grad():  # spread the weights a little so that codes vary across the image
        for p in model.parameters():
            p.mul_(1.5)
    g = torch.Generator().manual_seed(7)
    image = (torch.rand(2, 16, 16, 3, generator=g) * 255).round().to(torch.uint8).numpy()
    codes = model.encode_to_codes(to_model_input(image))
    recon = to_uint8(model.decode_codes(codes, (4, 4)))
    torch.save({"config": cfg.to_dict(), "model": model.state_dict(), "image": torch.from_numpy(image),
                "codes": codes, "recon": torch.from_numpy(recon)}, HERE / "golden" / "tiny_vq.pt")
    print("codes", codes.tolist())


if __name__ == "__main__":
    main()
