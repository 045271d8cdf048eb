"""Fine-tuning a shipped model on a folder of corrected cases (`uqseg finetune`).

    run.py          the command: cases → preprocessing → loss before → training → loss after → new model folder
    cases.py        which corrected cases of a corrections folder are usable (verified records), and their inputs
    loop.py         the one optimisation loop of the project: fine-tuning (BatchNorm statistics frozen) and every
                    training recipe in Training/ (schedules, evaluation hook, stops)
    augment.py      light augmentation
    model_folder.py the new model's id, version, card and atomic write
    pectoral.py, cxr.py, breast.py   one recipe per task family: preprocessing as inference, the training loss
    errors.py       CaseSkipped (one case) and FinetuneError (the run)
"""
