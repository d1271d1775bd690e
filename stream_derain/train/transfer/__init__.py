"""Task transfer learning (Wang, Ma, Liu 2022), the path v1 was trained by: two teachers
learn pretext tasks (:mod:`.teachers`: rain recognition and clean reconstruction, their
networks in :mod:`stream_derain.model.transfer`), the student distils their features
(:mod:`.distill`) and is fine-tuned on pairs with contrastive and semi-supervised terms
(:mod:`.finetune`); :mod:`.data` draws their batches.

Apart from the later distillation from a grown teacher (:mod:`stream_derain.model.grown_teacher`,
:mod:`stream_derain.train.teacher_targets`), which shares only the word "teacher".
"""
