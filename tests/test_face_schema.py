"""FACE68's flip permutation on real landmarks: mirroring swaps the eyes, and mirroring twice is the identity."""
import numpy as np

from poselive.schemas import FACE68

RIGHT_EYE = list(range(36, 42))   # the subject's right eye: image left in a frontal face
LEFT_EYE = list(range(42, 48))


def mirror(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally mirrored image (0-based pixel centres), re-labelled left <-> right."""
    out = landmarks.copy()
    out[:, 0] = width - 1 - out[:, 0]
    return out[FACE68.flip_permutation()]


def test_permutation_maps_right_eye_onto_left_eye_in_order():
    perm = FACE68.flip_permutation()
    # 300-W numbers each eye clockwise in the image from its image-left corner, so a mirror pairs outer corner
    # with outer corner (36, 45), inner with inner (39, 42), and the upper and lower lids in reverse order.
    assert list(perm[RIGHT_EYE]) == [45, 44, 43, 42, 47, 46]
    assert sorted(perm[LEFT_EYE]) == RIGHT_EYE
    assert (perm[perm] == np.arange(68)).all()
    assert (perm[27:31] == np.arange(27, 31)).all() and perm[8] == 8 and perm[33] == 33 and perm[57] == 57  # midline


def test_mirroring_real_faces_keeps_the_right_eye_on_the_image_left_and_twice_is_identity(shared_data):
    from poselive.pts import read_pts
    folder = shared_data / "face" / "300w" / "helen_train"
    faces = [read_pts(p) for p in sorted(folder.glob("*.pts"))[:40]]
    for lm in faces:
        width = int(lm[:, 0].max()) + 20
        m = mirror(lm, width)
        np.testing.assert_allclose(mirror(m, width), lm)
        # The subject's right eye is left of the left eye in the image, before and after mirroring; a missing
        # or wrong swap puts it on the other side.
        assert m[RIGHT_EYE, 0].mean() < m[LEFT_EYE, 0].mean()
        # The mirrored right eye is the original left eye, reflected.
        np.testing.assert_allclose(np.sort(m[RIGHT_EYE, 0]), np.sort(width - 1 - lm[LEFT_EYE, 0]))
        # The jaw runs from the image left (point 0) to the right (point 16) in both.
        assert m[0, 0] < m[16, 0] and lm[0, 0] < lm[16, 0]
